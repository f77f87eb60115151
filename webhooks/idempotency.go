package webhooks

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/earpiece/earpiece/app"
)

// HeaderIdempotencyKey makes POST /v1/supervisions safe to retry. The first request's answer
// (status and body) is kept for IdempotencyTTL under the tenant and key; a retry with the same
// key and the same request gets it again (with Idempotent-Replayed: true), and a different
// request with the same key gets 422 idempotency_mismatch.
const HeaderIdempotencyKey = "Idempotency-Key"

// HeaderIdempotentReplayed marks a replayed answer.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

// idemRecord is what an Idempotency-Key holds in Redis: first a claim (pending), taken before
// the app is called so that concurrent duplicates call it once, then the answer (done).
type idemRecord struct {
	State       string          `json:"state"`           // "pending" or "done"
	Fingerprint string          `json:"fingerprint"`     // of the request: key name, route, body
	Claim       string          `json:"claim,omitempty"` // random: tells claims apart
	Status      int             `json:"status,omitempty"`
	Body        json.RawMessage `json:"body,omitempty"`
}

const (
	idemPending = "pending"
	idemDone    = "done"
)

// idempotent runs do once per (tenant, Idempotency-Key):
//
//   - The first request claims the key (store.PutIfAbsent, TTL twice ActionTimeout), calls do,
//     and replaces the claim with the answer (TTL IdempotencyTTL). A 5xx answer (app or Redis unavailable) is not kept: the claim is
//     deleted so that a retry does the work again.
//   - A concurrent duplicate finds the claim and waits (IdempotencyWait at most, then 409
//     idempotency_in_progress) until the answer is there, then replays it.
//   - The same key with a different request (another API key, route or body) is 422.
//
// do runs detached from the client's connection: once claimed, the work and its record
// complete even if the client hangs up.
func (s *Server) idempotent(c *echo.Context, p app.Principal, key string, body []byte, do func(context.Context) (int, any, error)) error {
	if len(key) > 255 || !printableASCII(key) {
		return fieldError(HeaderIdempotencyKey, "want 1-255 printable ASCII characters")
	}
	req := c.Request()
	fp := fingerprint(p.KeyName, req.Method, c.Path(), body)
	claim, err := json.Marshal(idemRecord{State: idemPending, Fingerprint: fp, Claim: rand.Text()})
	if err != nil {
		return err
	}
	storeKey := "http:" + req.Method + ":" + c.Path() + ":" + key

	// A claim outlives the work it covers (bounded by ActionTimeout) but not by much: if this
	// instance dies half-way, retries may go ahead soon instead of waiting a day.
	claimTTL := 2 * s.cfg.ActionTimeout
	wait := 10 * time.Millisecond
	deadline := time.NewTimer(s.cfg.IdempotencyWait)
	defer deadline.Stop()
	for {
		existing, created, err := s.cfg.Store.PutIfAbsent(req.Context(), p.Tenant, storeKey, claim, claimTTL)
		if err != nil {
			return unavailable("idempotency key", err)
		}
		if created {
			break
		}
		var rec idemRecord
		if err := json.Unmarshal(existing, &rec); err != nil {
			return err
		}
		if rec.Fingerprint != fp {
			return newError(http.StatusUnprocessableEntity, codeIdempotencyMismatch,
				"%s %q was used for a different request", HeaderIdempotencyKey, key)
		}
		if rec.State == idemDone {
			c.Response().Header().Set(HeaderIdempotentReplayed, "true")
			return c.JSONBlob(rec.Status, rec.Body)
		}
		t := time.NewTimer(wait)
		select {
		case <-req.Context().Done():
			t.Stop()
			return req.Context().Err()
		case <-deadline.C:
			t.Stop()
			return newError(http.StatusConflict, codeIdempotencyBusy,
				"a request with %s %q is still in progress; retry later", HeaderIdempotencyKey, key)
		case <-t.C:
		}
		wait = min(wait*2, 200*time.Millisecond)
	}

	ctx, cancel := s.detached(req.Context())
	defer cancel()
	status, v, doErr := do(ctx)
	var answer []byte
	if doErr != nil {
		var eb errorBody
		status, eb = errorResponse(doErr)
		if status >= 500 {
			if _, err := s.cfg.Store.DeleteIdempotent(ctx, p.Tenant, storeKey, claim); err != nil {
				log := s.requestLog(c)
				log.Warn().Err(err).Str("tenant", p.Tenant).Msg("releasing an idempotency claim")
			}
			return doErr
		}
		answer, err = json.Marshal(eb)
	} else {
		answer, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	done, err := json.Marshal(idemRecord{State: idemDone, Fingerprint: fp, Status: status, Body: answer})
	if err != nil {
		return err
	}
	if ok, err := s.cfg.Store.SwapIdempotent(ctx, p.Tenant, storeKey, claim, done, s.cfg.IdempotencyTTL); err != nil || !ok {
		// The work is done; only a retry's replay is lost (it would wait, then get 409).
		log := s.requestLog(c)
		log.Warn().Err(err).Bool("swapped", ok).Str("tenant", p.Tenant).Msg("recording an idempotent answer")
	}
	return c.JSONBlob(status, answer)
}

// fingerprint identifies a request for Idempotency-Key matching. The API key's name is part of
// it: two keys of one tenant sending the same Idempotency-Key are different requests.
func fingerprint(keyName, method, route string, body []byte) string {
	h := sha256.New()
	for _, part := range []string{keyName, method, route} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}
