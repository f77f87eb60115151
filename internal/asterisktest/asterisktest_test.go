package asterisktest

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// TestSharedAnswersARI checks that the provisioned Asterisk is 22.x, answers ARI with the overlay's
// credentials, refuses wrong ones, and loaded the modules earpiece relies on.
func TestSharedAnswersARI(t *testing.T) {
	a := Shared(t)
	get := func(user, pass string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, a.ARIURL+"/asterisk/info", nil)
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get(a.User, a.Password)
	if code != http.StatusOK || !strings.Contains(body, `"version":"22.`) {
		t.Fatalf("asterisk/info: %d %s", code, body)
	}
	if code, _ := get(a.User, "wrong"); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: got %d, want 401", code)
	}
	if a.External {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := a.CLI(ctx, "module show like snoop")
	if err != nil || !strings.Contains(out, "res_stasis_snoop.so") || !strings.Contains(out, "Running") {
		t.Fatalf("res_stasis_snoop not running: %v\n%s", err, out)
	}
	out, err = a.CLI(ctx, "pjsip show transports")
	if err != nil || !strings.Contains(out, a.SIPAddr()) {
		t.Fatalf("pjsip transport not on %s: %v\n%s", a.SIPAddr(), err, out)
	}
	out, err = a.CLI(ctx, "queue show support")
	if err != nil || !strings.Contains(out, "Local/744@queue-agents/n") {
		t.Fatalf("queue example not loaded: %v\n%s", err, out)
	}
}
