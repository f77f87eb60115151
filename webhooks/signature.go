package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
)

// Signed requests. A key's signing secret (its own, never the API key, and never sent) keys
// an HMAC over everything that says what the request does:
//
//	X-Earpiece-Timestamp: <Unix seconds>
//	X-Earpiece-Nonce:     <16-64 characters from A-Z a-z 0-9 _ ->, new for every request
//	X-Earpiece-Signature: v1=<hex HMAC-SHA256(signing secret, signing string)>
//
//	signing string = "v1" LF timestamp LF nonce LF method LF path LF query LF hex(SHA-256(body))
//
// where path and query are the request target exactly as sent (the query without its "?",
// empty when there is none). The timestamp must be within SignatureTolerance of the server's
// clock, and every nonce is recorded for twice the tolerance: a captured request cannot be
// replayed, nor turned into another (its method, path, query and body are signed), and a
// captured API key is of no use for a key that must sign.
const (
	HeaderTimestamp = "X-Earpiece-Timestamp"
	HeaderNonce     = "X-Earpiece-Nonce"
	HeaderSignature = "X-Earpiece-Signature"
)

// Nonce length bounds.
const (
	minNonceLen = 16
	maxNonceLen = 64
)

// signedHeaders are the parsed headers of a signed request.
type signedHeaders struct {
	ts    int64
	nonce string
	mac   []byte
}

// parseSignatureHeaders parses the three headers' values (errors name the header at fault).
func parseSignatureHeaders(ts, nonce, sig string) (signedHeaders, error) {
	var h signedHeaders
	if len(ts) == 0 || len(ts) > 12 || strings.TrimLeft(ts, "0123456789") != "" {
		return h, fmt.Errorf("%s: want Unix seconds", HeaderTimestamp)
	}
	h.ts, _ = strconv.ParseInt(ts, 10, 64) // at most 12 digits: fits
	if len(nonce) < minNonceLen || len(nonce) > maxNonceLen || strings.ContainsFunc(nonce, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '_' || r == '-')
	}) {
		return h, fmt.Errorf("%s: want %d-%d characters from A-Z, a-z, 0-9, '_' and '-'", HeaderNonce, minNonceLen, maxNonceLen)
	}
	h.nonce = nonce
	hexMAC, ok := strings.CutPrefix(sig, "v1=")
	if !ok || len(hexMAC) != 2*sha256.Size {
		return h, fmt.Errorf("%s: want v1=<64 hex digits>", HeaderSignature)
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return h, fmt.Errorf("%s: want v1=<64 hex digits>", HeaderSignature)
	}
	h.mac = mac
	return h, nil
}

// signingString is what a signature covers (see the package's signed-request scheme).
func signingString(ts int64, nonce, method, target string, body []byte) []byte {
	path, query, _ := strings.Cut(target, "?")
	sum := sha256.Sum256(body)
	return fmt.Appendf(nil, "v1\n%d\n%s\n%s\n%s\n%s\n%s", ts, nonce, method, path, query, hex.EncodeToString(sum[:]))
}

// SignRequest returns the X-Earpiece-Signature value of a request: signingSecret is the key's
// signing secret, ts the X-Earpiece-Timestamp, nonce the X-Earpiece-Nonce, target the path and
// query exactly as sent ("/v1/calls", "/v1/webhook-deliveries?limit=10"), body the raw body.
func SignRequest(signingSecret string, ts int64, nonce, method, target string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(signingSecret))
	mac.Write(signingString(ts, nonce, method, target, body))
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// requestTarget is the request's path and query as the client sent them.
func requestTarget(r *http.Request) string {
	if r.RequestURI != "" && r.RequestURI != "*" && !strings.Contains(r.RequestURI, "://") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// verifySignature checks the signature headers when sent, and requires them when required.
// Every nonce of a valid signature is recorded (ClaimNonce) for twice the tolerance, GET
// included: a timestamp is accepted from now-tolerance to now+tolerance.
func (s *Server) verifySignature(c *echo.Context, p app.Principal, auth authInfo, required bool) error {
	hd := c.Request().Header
	ts, nonce, sig := hd.Get(HeaderTimestamp), hd.Get(HeaderNonce), hd.Get(HeaderSignature)
	if ts == "" && nonce == "" && sig == "" {
		if required {
			return newError(http.StatusUnauthorized, codeSignatureRequired,
				"this key requires signed requests (%s, %s and %s)", HeaderTimestamp, HeaderNonce, HeaderSignature)
		}
		return nil
	}
	if ts == "" || nonce == "" || sig == "" {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "send all of %s, %s and %s", HeaderTimestamp, HeaderNonce, HeaderSignature)
	}
	if auth.signingSecret == "" {
		return newError(http.StatusUnauthorized, codeInvalidSignature,
			"this key has no signing secret (a key created before signing secrets existed, or a configuration key without signing_secret): it cannot sign")
	}
	h, err := parseSignatureHeaders(ts, nonce, sig)
	if err != nil {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "%v", err)
	}
	if d := s.now().Sub(time.Unix(h.ts, 0)); d > s.cfg.SignatureTolerance || d < -s.cfg.SignatureTolerance {
		return newError(http.StatusUnauthorized, codeSignatureExpired,
			"%s is more than %v away from the server's time", HeaderTimestamp, s.cfg.SignatureTolerance)
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	req := c.Request()
	mac := hmac.New(sha256.New, []byte(auth.signingSecret))
	mac.Write(signingString(h.ts, h.nonce, req.Method, requestTarget(req), body))
	if !hmac.Equal(h.mac, mac.Sum(nil)) {
		return newError(http.StatusUnauthorized, codeInvalidSignature, "signature does not match (method, path, query, body, timestamp and nonce are signed)")
	}
	fresh, err := s.cfg.Store.ClaimNonce(req.Context(), p.Tenant, "sig:"+p.KeyName+":"+h.nonce, 2*s.cfg.SignatureTolerance)
	if err != nil {
		return unavailable("checking the signature", err)
	}
	if !fresh {
		return newError(http.StatusUnauthorized, codeSignatureReplayed, "this nonce was already used")
	}
	return nil
}
