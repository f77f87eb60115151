package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earpiece/earpiece/config"
	"github.com/earpiece/earpiece/internal/testphone"
)

// envPlan names the plan file of the run inside the private namespaces: set, TestStack is that
// run.
const envPlan = "EARPIECE_STACKTEST_PLAN"

// sampleKey is the admin key of docker/earpiece.yaml, which the README tells people to replace.
const sampleKey = "example-acme-crm-key"

// plan is what the outer TestStack prepared (images, secrets) for the run in the namespaces.
type plan struct {
	Project      *Project
	Images       map[string]*Image
	RunDir       string
	APIKey       string
	SIPPasswords map[string]string
	// DialplanWant is what `earpiece dialplan render` must print for the compose configuration.
	DialplanWant string
	// OwnConfig is the operator's own configuration file (EARPIECE_CONFIG_FILE).
	OwnConfig string
}

// TestStack is `docker compose -f docker/compose.yml up --build` without Docker (see the package
// documentation for what is emulated and how), then what the README tells a new user to do:
// register softphones with the passwords given to compose, supervise a call by feature code and
// by the API with a key of their own, render the dialplan with the earpiece image. It also checks
// what compose promises: Asterisk drops every capability and starts without errors or warnings,
// phones without the right password are refused, earpiece runs unprivileged on a read-only root,
// every service stops cleanly on SIGTERM.
func TestStack(t *testing.T) {
	if p := os.Getenv(envPlan); p != "" {
		runStack(t, p)
		return
	}
	if testing.Short() {
		t.Skip("starts the compose stack")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (chroot, mounts, network namespaces); CI runs as root")
	}
	requireTools(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), testBudget(t))
	defer cancel()
	mod := moduleRoot(t)
	base := provisionRoot(t, mod)
	archive, err := BaseArchive(base)
	if err != nil {
		t.Fatal(err)
	}
	runDir, err := os.MkdirTemp("", "earpiece-stack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeRunDir(t, runDir) })

	// What a person following the README sets: passwords for the phones, an ARI password, a
	// configuration of their own with their own API key (EARPIECE_CONFIG_FILE). The build args
	// point apt at the test root's (dated) archive, as the README says to do when sid moved on.
	composeFile := filepath.Join(mod, "docker", "compose.yml")
	p := &plan{RunDir: runDir, APIKey: "ek_" + randomHex(20), Images: map[string]*Image{}}
	p.SIPPasswords = map[string]string{"700": randomHex(10), "744": randomHex(10), "800": randomHex(10)}
	defaults, err := LoadCompose(ctx, composeFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ownConfig := filepath.Join(runDir, "earpiece.local.yaml")
	p.DialplanWant = writeOwnConfig(t, defaults, ownConfig, p.APIKey, mod)
	p.OwnConfig = ownConfig
	env := map[string]string{
		"EARPIECE_ARI_PASSWORD":           randomHex(12),
		"EARPIECE_SIP_PASSWORDS":          fmt.Sprintf("700=%s 744=%s 800=%s", p.SIPPasswords["700"], p.SIPPasswords["744"], p.SIPPasswords["800"]),
		"EARPIECE_CONFIG_FILE":            ownConfig,
		"EARPIECE_APT_MIRROR":             archive,
		"EARPIECE_APT_IGNORE_VALID_UNTIL": "true",
	}
	if p.Project, err = LoadCompose(ctx, composeFile, env); err != nil {
		t.Fatal(err)
	}

	// The images, built side by side.
	stamp, err := os.ReadFile(filepath.Join(base, ".earpiece-ready"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		errs     []error
		buildLog bytes.Buffer
	)
	logw := &lockedWriter{w: &buildLog}
	for name, svc := range p.Project.Services {
		if svc.Build == nil {
			if !strings.HasPrefix(svc.Image, "redis:7") {
				t.Fatalf("service %s: image %s is not emulated", name, svc.Image)
			}
			mu.Lock()
			p.Images[name] = RedisImage()
			mu.Unlock()
			continue
		}
		df, err := ParseDockerfile(svc.Build.Dockerfile)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := svc.Build.Args["ASTERISK_VERSION"]; ok && v != strings.TrimSpace(string(stamp)) {
			t.Errorf("compose builds Asterisk %s but the tests run %s (scripts/asterisk-root.sh): what is tested is not what ships", v, strings.TrimSpace(string(stamp)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var img *Image
			var err error
			if strings.HasPrefix(df.Final().From, "debian:") {
				img, err = BuildDebian(ctx, df, svc.Build.Context, svc.Build.Args, base, cacheDir(t), logw)
			} else {
				img, _, err = BuildStatic(ctx, df, svc.Build.Context, svc.Build.Args, filepath.Join(runDir, "build-"+name), logw)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: %w", name, err))
				return
			}
			p.Images[name] = img
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%v\nbuild output:\n%s", err, buildLog.String())
	}
	built := time.Since(start)

	planPath := filepath.Join(runDir, "plan.json")
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// The run: this test binary again, alone in new network, mount and PID namespaces. When it
	// ends, for whatever reason, the kernel ends every process it started and drops its mounts.
	childTimeout := time.Until(deadlineOf(ctx)) - 5*time.Second
	cmd := exec.CommandContext(ctx, "unshare", "--net", "--mount", "--propagation", "private", "--pid", "--fork",
		"--kill-child", "--mount-proc", "--", os.Args[0], "-test.run=^TestStack$", "-test.v", "-test.count=1",
		"-test.timeout="+childTimeout.String())
	cmd.Env = append(os.Environ(), envPlan+"="+planPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the compose stack failed (%v); its run:\n%s", err, out)
	}
	t.Logf("images ready in %s, stack run in %s; the run:\n%s", built.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), out)
}

// writeOwnConfig does what the README says to do before using the API: a copy of the sample
// configuration with one's own admin key in place of the sample one. It returns the dialplan the
// copy renders to (the committed extensions_earpiece.conf without its first line).
func writeOwnConfig(t *testing.T, defaults *Project, dst, key, mod string) string {
	t.Helper()
	svc := defaults.Services["earpiece"]
	if svc == nil {
		t.Fatal("compose.yml has no earpiece service")
	}
	var sample string
	for _, v := range svc.Volumes {
		if v.Target == "/etc/earpiece/earpiece.yaml" {
			sample = v.Source
		}
	}
	if sample == "" {
		t.Fatal("the earpiece service mounts no /etc/earpiece/earpiece.yaml")
	}
	data, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	old := config.SHA256Hex(sampleKey)
	if n := strings.Count(string(data), old); n != 1 {
		t.Fatalf("%s carries the sample key's hash %d times, want once (the README's replacement step)", sample, n)
	}
	own := strings.Replace(string(data), old, config.SHA256Hex(key), 1)
	if err := os.WriteFile(dst, []byte(own), 0o644); err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(mod, "asterisk-conf", "extensions_earpiece.conf"))
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(committed), "\n")
	return body
}

// runStack is TestStack inside the private namespaces: it starts the services in compose's
// order, then plays the README.
func runStack(t *testing.T, planPath string) {
	start := time.Now()
	data, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	var p plan
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testBudget(t))
	defer cancel()
	isolate(ctx, t)

	names, err := p.Project.ServiceNames()
	if err != nil {
		t.Fatal(err)
	}
	rt := &Runtime{Dir: filepath.Join(p.RunDir, "containers"), Hosts: names}
	containers := map[string]*Container{}
	healthy := map[string]bool{}
	t.Cleanup(func() {
		for i := len(names) - 1; i >= 0; i-- {
			if c := containers[names[i]]; c != nil {
				c.Kill()
				if t.Failed() {
					t.Logf("== %s output (last lines):\n%s", c.Name, tail(c.Log, 60))
				}
			}
		}
	})
	waitHealthy := func(name string) {
		t.Helper()
		if healthy[name] {
			return
		}
		if err := containers[name].WaitHealthy(ctx); err != nil {
			t.Fatalf("%v\n== %s output:\n%s", err, name, tail(containers[name].Log, 60))
		}
		healthy[name] = true
		t.Logf("%s healthy after %s", name, time.Since(start).Round(time.Millisecond))
	}
	for _, name := range names {
		svc := p.Project.Services[name]
		for dep, cond := range svc.DependsOn {
			switch cond {
			case "service_healthy":
				waitHealthy(dep)
			case "service_started", "":
			default:
				t.Fatalf("service %s: depends_on condition %s is not emulated", name, cond)
			}
		}
		c, err := rt.Start(ctx, svc, p.Images[name])
		if err != nil {
			t.Fatal(err)
		}
		containers[name] = c
	}
	for _, name := range names {
		waitHealthy(name)
	}
	ast, ep := containers["asterisk"], containers["earpiece"]
	if ast == nil || ep == nil {
		t.Fatal("compose.yml lacks the asterisk or the earpiece service")
	}

	t.Run("Privileges", func(t *testing.T) { checkPrivileges(t, p.Project, ast, ep) })
	t.Run("QuietStart", func(t *testing.T) { checkQuietStart(t, ast) })
	sipPort, ok := p.Project.Services["asterisk"].PublishedPort(5060, "udp")
	if !ok {
		t.Fatal("asterisk publishes no SIP port 5060/udp")
	}
	apiPort, ok := p.Project.Services["earpiece"].PublishedPort(8080, "tcp")
	if !ok {
		t.Fatal("earpiece publishes no API port 8080/tcp")
	}
	for _, port := range []Port{sipPort, apiPort} {
		if port.HostPort != port.ContainerPort {
			t.Fatalf("port %+v: a published port other than the container's is not emulated", port)
		}
	}
	sip := net.JoinHostPort(hostAddr(sipPort), strconv.Itoa(sipPort.HostPort))
	api := "http://" + net.JoinHostPort(hostAddr(apiPort), strconv.Itoa(apiPort.HostPort))

	t.Run("SIPNeedsPasswords", func(t *testing.T) { checkSIPAuth(ctx, t, sip, p.SIPPasswords["700"]) })
	s := newSupervision(ctx, t, sip, p.SIPPasswords)
	t.Run("FeatureCode", func(t *testing.T) { s.featureCode(t) })
	t.Run("LiveCodes", func(t *testing.T) { s.liveCodes(t, api, p.APIKey) })
	t.Run("ReloadOnHangup", func(t *testing.T) { checkReloadOnHangup(ctx, t, ep, p.OwnConfig, api, p.APIKey) })
	t.Run("API", func(t *testing.T) { s.api(t, api, p.APIKey) })
	t.Run("Recreate", func(t *testing.T) {
		containers["earpiece"] = s.recreate(t, rt, p.Project.Services["earpiece"], p.Images["earpiece"], ep, api, p.APIKey)
	})
	s.close()
	t.Run("DialplanRender", func(t *testing.T) { checkDialplanRender(ctx, t, rt, p, p.DialplanWant) })

	// `docker compose stop`: SIGTERM, SIGKILL after the service's stop_grace_period.
	for i := len(names) - 1; i >= 0; i-- {
		c := containers[names[i]]
		grace := p.Project.Services[names[i]].StopGrace
		exit, killed := c.Stop(grace)
		if killed {
			t.Errorf("%s did not stop within %v of SIGTERM", c.Name, grace)
		} else if exit != nil {
			t.Errorf("%s exited with %v after SIGTERM", c.Name, exit)
		}
	}
	t.Logf("stack up, used and stopped in %s", time.Since(start).Round(time.Millisecond))
}

// isolate checks that the run is in a network namespace of its own and brings its loopback up:
// no packet of this test can reach another machine.
func isolate(ctx context.Context, t *testing.T) {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Flags&net.FlagLoopback == 0 {
		t.Fatalf("not in a private network namespace: interfaces %v", ifs)
	}
	if err := run(ctx, "ip", "link", "set", "lo", "up"); err != nil {
		t.Fatal(err)
	}
}

// checkPrivileges: Asterisk runs as the asterisk user with no capability left (only the bounding
// set compose gives remains, which a non-root process under no-new-privileges cannot use);
// earpiece runs as distroless's nonroot with nothing at all.
func checkPrivileges(t *testing.T, proj *Project, ast, ep *Container) {
	st := procStatus(t, ast.Pid())
	if st["Name"] != "asterisk" {
		t.Fatalf("the asterisk container's main process is %q, want asterisk (the entrypoint execs it)", st["Name"])
	}
	uid := ""
	for _, f := range readColonFile(filepath.Join(ast.Root, "etc/passwd")) {
		if f[0] == "asterisk" {
			uid = f[2]
		}
	}
	if got := strings.Fields(st["Uid"]); uid == "" || len(got) != 4 || got[0] != uid || got[1] != uid || got[2] != uid || got[3] != uid {
		t.Errorf("Asterisk runs with uids %q, want the asterisk user's (%s) throughout", st["Uid"], uid)
	}
	caps, err := proj.Services["asterisk"].Capabilities()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0, "CapBnd": CapMask(caps), "NoNewPrivs": 1}
	checkStatus(t, "Asterisk", st, want)

	st = procStatus(t, ep.Pid())
	if got := strings.Fields(st["Uid"]); len(got) != 4 || got[0] != "65532" || got[1] != "65532" {
		t.Errorf("earpiece runs with uids %q, want 65532 (distroless nonroot)", st["Uid"])
	}
	checkStatus(t, "earpiece", st, map[string]uint64{"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapAmb": 0, "CapBnd": 0, "NoNewPrivs": 1})
	// compose's read_only: the root earpiece sees (mount point "/" in its mountinfo) is read-only.
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", ep.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	rootRO := false
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
			rootRO = slices.Contains(strings.Split(f[5], ","), "ro") // the last mount on "/" is the one seen
		}
	}
	if !rootRO {
		t.Errorf("earpiece's root file system is writable, want read-only (compose's read_only: true)")
	}
}

func checkStatus(t *testing.T, who string, st map[string]string, want map[string]uint64) {
	t.Helper()
	for k, w := range want {
		got, err := strconv.ParseUint(st[k], 16, 64)
		if k == "NoNewPrivs" {
			got, err = strconv.ParseUint(st[k], 10, 64)
		}
		if err != nil || got != w {
			t.Errorf("%s: %s is %q, want %x", who, k, st[k], w)
		}
	}
}

// checkQuietStart: no ERROR or WARNING line from Asterisk's start, neither on its console (the
// container's output) nor in its messages log, and no warning from the entrypoint.
func checkQuietStart(t *testing.T, ast *Container) {
	bad := regexp.MustCompile(`\b(ERROR|WARNING)\[|asterisk-entrypoint: (warning|error)`)
	var lines []string
	for _, f := range []string{ast.Log, filepath.Join(ast.Root, "var/log/asterisk/messages.log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if bad.MatchString(l) {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) > 0 {
		t.Errorf("Asterisk's start logged %d ERROR/WARNING lines (load only the modules needed, give them their configuration):\n%s",
			len(lines), strings.Join(lines, "\n"))
	}
}

// checkSIPAuth: nobody registers without the password the operator set: not with a wrong one,
// not without one, and not as a sample phone that was given none.
func checkSIPAuth(ctx context.Context, t *testing.T, sip, pass700 string) {
	for _, tc := range []struct{ user, pass, why string }{
		{"700", "", "no password"},
		{"700", pass700 + "x", "a wrong password"},
		{"701", pass700, "a phone compose gave no password"},
	} {
		ph, err := testphone.New(ctx, testphone.Config{User: tc.user, Password: tc.pass, Server: sip})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = ph.Register(rctx)
		cancel()
		ph.Close()
		if err == nil {
			t.Errorf("%s registered with %s", tc.user, tc.why)
		}
	}
}

// supervision holds the README's two softphones: agent 744 in a call, supervisor 700.
type supervision struct {
	ctx        context.Context
	agent, sup *testphone.Phone
	agentCall  *testphone.Call
	closeOnce  sync.Once
}

// newSupervision registers agent 744 and supervisor 700 with their passwords; the agent dials
// 440, the stand-in customer of the sample dialplan (a 440 Hz tone).
func newSupervision(ctx context.Context, t *testing.T, sip string, pw map[string]string) *supervision {
	t.Helper()
	s := &supervision{ctx: ctx}
	t.Cleanup(s.close)
	phone := func(user string, hz float64, pol testphone.Policy) *testphone.Phone {
		ph, err := testphone.New(ctx, testphone.Config{User: user, Password: pw[user], Server: sip, ToneHz: hz, Incoming: pol})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := ph.Register(rctx); err != nil {
			ph.Close()
			t.Fatalf("%s registers with its password: %v", user, err)
		}
		return ph
	}
	s.agent = phone("744", testphone.ToneAgent, testphone.AutoAnswer)
	s.sup = phone("700", testphone.ToneSupervisor, testphone.Manual)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if s.agentCall, err = s.agent.Call(cctx, "440"); err != nil {
		t.Fatalf("744 dials 440: %v", err)
	}
	s.hears(t, s.agentCall, testphone.ToneCustomer, time.Time{}.Add(1), "the agent")
	return s
}

// close hangs up and closes the phones (before the stack stops, and at the latest when the
// test ends).
func (s *supervision) close() {
	s.closeOnce.Do(func() {
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if s.agentCall != nil {
			s.agentCall.Hangup(hctx)
		}
		for _, ph := range []*testphone.Phone{s.sup, s.agent} {
			if ph != nil {
				ph.Close()
			}
		}
	})
}

// hears waits until c hears hz in 5 frames in a row arriving after since.
func (s *supervision) hears(t *testing.T, c *testphone.Call, hz float64, since time.Time, who string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	at, err := c.AwaitToneSince(ctx, since, hz, true, 5)
	if err != nil {
		t.Fatalf("%s never heard %v Hz: %v", who, hz, err)
	}
	return at
}

// featureCode: 700 dials *90744 (spy) and hears both parties, switches to whisper with 1 and
// the agent hears them.
func (s *supervision) featureCode(t *testing.T) {
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	c, err := s.sup.Call(ctx, "*90744")
	if err != nil {
		t.Fatalf("700 dials *90744: %v", err)
	}
	defer func() {
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.Hangup(hctx)
	}()
	s.hears(t, c, testphone.ToneCustomer, time.Time{}.Add(1), "the supervisor (spy)")
	s.hears(t, c, testphone.ToneAgent, time.Time{}.Add(1), "the supervisor (spy)")
	// Spy: half a second of the agent's audio without a frame of the supervisor.
	since := time.Now()
	until := s.hearsFor(t, s.agentCall, testphone.ToneCustomer, since, 25, "the agent")
	if p := s.agentCall.Heard(testphone.ToneSupervisor, since, until); p.Present > 0 {
		t.Errorf("the agent heard the spying supervisor in %d of %d frames", p.Present, p.Frames)
	}
	switched := time.Now()
	if err := c.SendDTMF(ctx, "1"); err != nil {
		t.Fatalf("DTMF 1: %v", err)
	}
	s.hears(t, s.agentCall, testphone.ToneSupervisor, switched, "the agent (whisper)")
}

// hearsFor waits until c has heard hz in n frames in a row after since and returns when.
func (s *supervision) hearsFor(t *testing.T, c *testphone.Call, hz float64, since time.Time, n int, who string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	at, err := c.AwaitToneSince(ctx, since, hz, true, n)
	if err != nil {
		t.Fatalf("%s: %v Hz for %d frames: %v", who, hz, n, err)
	}
	return at.Add(time.Duration(n) * 20 * time.Millisecond)
}

// api: with the operator's own key, the CRM finds the call in GET /v1/calls and has earpiece call
// the supervisor and join them (the README's request); DELETE ends it.
func (s *supervision) api(t *testing.T, base, key string) {
	ctx, cancel := context.WithTimeout(s.ctx, 20*time.Second)
	defer cancel()
	do := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		return apiDo(ctx, t, base, key, method, path, body)
	}
	listed := false
	for !listed {
		code, body := do(http.MethodGet, "/v1/calls", "")
		if code != http.StatusOK {
			t.Fatalf("GET /v1/calls: %d %v", code, body)
		}
		calls, _ := body["calls"].([]any)
		for _, c := range calls {
			m, _ := c.(map[string]any)
			if id, _ := m["call_id"].(string); m["agent"] == "744" && id != "" {
				listed = true
			}
		}
		if listed {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("GET /v1/calls never listed 744's call: %v", body)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The README's request.
	code, sess := do(http.MethodPost, "/v1/supervisions", `{"agent":"744","supervisor":"700","mode":"spy"}`)
	id, _ := sess["id"].(string)
	if code != http.StatusAccepted || id == "" {
		t.Fatalf("POST /v1/supervisions: %d %v", code, sess)
	}
	in, err := s.sup.AwaitIncoming(ctx)
	if err != nil {
		t.Fatalf("earpiece never called the supervisor: %v", err)
	}
	if err := in.Answer(ctx); err != nil {
		t.Fatal(err)
	}
	s.hears(t, in, testphone.ToneCustomer, time.Time{}.Add(1), "the supervisor (API, spy)")
	s.hears(t, in, testphone.ToneAgent, time.Time{}.Add(1), "the supervisor (API, spy)")
	if code, got := do(http.MethodGet, "/v1/supervisions/"+id, ""); code != http.StatusOK || got["state"] != "active" {
		t.Errorf("GET /v1/supervisions/%s once the supervisor hears the call: %d %v, want active", id, code, got)
	}
	if code, got := do(http.MethodDelete, "/v1/supervisions/"+id, ""); code != http.StatusOK || got["state"] != "ended" {
		t.Errorf("DELETE /v1/supervisions/%s: %d %v", id, code, got)
	}
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Error("the supervisor was not hung up after DELETE")
	}
}

// liveCodes: the tenant's admin changes acme's codes through the API with no restart. earpiece
// renders the dialplan into the volume Asterisk reads and reloads it through ARI, so the next
// dial of the new code supervises and the old one is no longer a code. The old codes come back
// at the end, the same way.
func (s *supervision) liveCodes(t *testing.T, base, key string) {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	code, rules := apiDo(ctx, t, base, key, http.MethodGet, "/v1/tenants/acme/dialing-rules", "")
	if code != http.StatusOK || rules["spy_prefix"] != "*90" {
		t.Fatalf("GET acme's dialing rules: %d %v", code, rules)
	}
	put := func(spy, whisper, barge string) {
		t.Helper()
		next := maps.Clone(rules)
		next["spy_prefix"], next["whisper_prefix"], next["barge_prefix"] = spy, whisper, barge
		body, _ := json.Marshal(next)
		if code, got := apiDo(ctx, t, base, key, http.MethodPut, "/v1/tenants/acme/dialing-rules", string(body)); code != http.StatusOK {
			t.Fatalf("PUT acme's dialing rules %s: %d %v", body, code, got)
		}
	}
	spyOn := func(dial string) {
		t.Helper()
		c, err := s.sup.Call(ctx, dial)
		if err != nil {
			t.Fatalf("700 dials %s: %v", dial, err)
		}
		defer func() {
			hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c.Hangup(hctx)
		}()
		s.hears(t, c, testphone.ToneCustomer, time.Time{}.Add(1), "the supervisor (spy with "+dial+")")
	}
	put("*70", "*71", "*72")
	spyOn("*70744")
	if c, err := s.sup.Call(ctx, "*90744"); err == nil {
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		c.Hangup(hctx)
		cancel()
		t.Fatal("the old code *90 still reached a supervision after the change")
	}
	put("*90", "*91", "*92")
	spyOn("*90744")
}

// checkReloadOnHangup: those who keep the directory in their file edit it and send SIGHUP
// (`docker compose kill -s HUP earpiece`): the edited tenants are in force at once, served by the
// same process (no restart).
func checkReloadOnHangup(ctx context.Context, t *testing.T, ep *Container, file, api, key string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), "name: ACME Support", "name: ACME Support (reloaded)", 1)
	if edited == string(data) {
		t.Fatalf("%s has no tenant named ACME Support", file)
	}
	// In place, as an editor that keeps the inode does (Docker's single-file bind mount).
	if err := os.WriteFile(file, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := ep.Pid()
	if err := syscall.Kill(pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, tenant := apiDo(ctx, t, api, key, http.MethodGet, "/v1/tenants/acme", "")
		if code == http.StatusOK && tenant["name"] == "ACME Support (reloaded)" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("5 s after SIGHUP, GET /v1/tenants/acme: %d %v", code, tenant)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-ep.Done():
		t.Fatal("earpiece exited on SIGHUP")
	default:
	}
	if ep.Pid() != pid {
		t.Fatal("earpiece was restarted")
	}
}

// apiDo makes one API request with key and decodes the JSON answer.
func apiDo(ctx context.Context, t *testing.T, base, key, method, path, body string) (int, map[string]any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// recreate: earpiece is killed (-9) while 700 supervises 744 and compose re-creates the
// container, with another host name. The new one takes the node's lease and adopts the session:
// the supervisor keeps hearing the call, and the API ends it. It returns the new container.
func (s *supervision) recreate(t *testing.T, rt *Runtime, svc *Service, img *Image, old *Container, base, key string) *Container {
	ctx, cancel := context.WithTimeout(s.ctx, 40*time.Second)
	defer cancel()
	c, err := s.sup.Call(ctx, "*90744")
	if err != nil {
		t.Fatalf("700 dials *90744: %v", err)
	}
	defer func() {
		hctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c.Hangup(hctx)
	}()
	s.hears(t, c, testphone.ToneAgent, time.Time{}.Add(1), "the supervisor (spy)")
	var id string
	code, body := apiDo(ctx, t, base, key, http.MethodGet, "/v1/supervisions", "")
	list, _ := body["supervisions"].([]any)
	for _, x := range list {
		if m, _ := x.(map[string]any); m["supervisor"] == "700" && m["state"] == "active" {
			id, _ = m["id"].(string)
		}
	}
	if code != http.StatusOK || id == "" {
		t.Fatalf("GET /v1/supervisions: %d %v, want 700's active session", code, body)
	}

	old.Kill()
	re := *svc
	re.Name = svc.Name + "-recreated"
	nc, err := rt.Start(ctx, &re, img)
	if err != nil {
		t.Fatal(err)
	}
	if nc.Hostname == old.Hostname {
		t.Fatal("the re-created container has its predecessor's host name")
	}
	if err := nc.WaitHealthy(ctx); err != nil {
		t.Fatalf("%v\n%s", err, tail(nc.Log, 40))
	}
	// The new container holds the node's lease under the same name at once and adopts the
	// session: the supervisor goes on hearing the call, and the API can end it.
	s.hears(t, c, testphone.ToneAgent, time.Now(), "the supervisor, after the re-creation")
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, got := apiDo(ctx, t, base, key, http.MethodGet, "/v1/supervisions/"+id, "")
		if code == http.StatusOK && got["state"] == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /v1/supervisions/%s after the re-creation: %d %v, want it active (adopted)", id, code, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, got := apiDo(ctx, t, base, key, http.MethodDelete, "/v1/supervisions/"+id, ""); code != http.StatusOK || got["state"] != "ended" {
		t.Errorf("DELETE /v1/supervisions/%s after the re-creation: %d %v", id, code, got)
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Error("the adopted session's supervisor was not hung up by DELETE")
	}
	return nc
}

// checkDialplanRender runs the README's `docker compose run --rm earpiece dialplan render
// --config /etc/earpiece/earpiece.yaml` with the earpiece image: distroless (no shell), nonroot,
// read-only.
func checkDialplanRender(ctx context.Context, t *testing.T, rt *Runtime, p plan, want string) {
	svc := *p.Project.Services["earpiece"]
	svc.Name = "earpiece-run"
	svc.Command = []string{"dialplan", "render", "--config", "/etc/earpiece/earpiece.yaml"}
	svc.Healthcheck = nil
	c, err := rt.Start(ctx, &svc, p.Images["earpiece"])
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
		c.Kill()
		t.Fatal("earpiece dialplan render did not finish")
	}
	out, _ := os.ReadFile(c.Log)
	if err := c.ExitErr(); err != nil {
		t.Fatalf("earpiece dialplan render: %v\n%s", err, out)
	}
	if string(out) != want {
		t.Errorf("earpiece dialplan render printed:\n%s\nwant asterisk-conf/extensions_earpiece.conf's:\n%s", out, want)
	}
}

// hostAddr is where a published port is reached from this host.
func hostAddr(p Port) string {
	if p.HostIP == "" || p.HostIP == "0.0.0.0" || p.HostIP == "::" {
		return "127.0.0.1"
	}
	return p.HostIP
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// requireTools fails (it does not skip: CI must run this test) when a tool is missing.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"unshare", "mount", "capsh", "ip", "redis-server", "redis-cli", "docker-compose", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing %v: run scripts/test-deps.sh", missing)
	}
}

// testBudget is the time the test may take: until shortly before go test's deadline, at most 4
// minutes.
func testBudget(t *testing.T) time.Duration {
	budget := 4 * time.Minute
	if d, ok := t.Deadline(); ok && time.Until(d)-10*time.Second < budget {
		budget = time.Until(d) - 10*time.Second
	}
	return budget
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// moduleRoot finds the repository root (the directory holding go.mod) above the working
// directory, which `go test` sets to the package's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// provisionRoot runs scripts/asterisk-root.sh, which builds the Debian sid root once (as for
// internal/asterisktest) and prints its path.
func provisionRoot(t *testing.T, mod string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(mod, "scripts", "asterisk-root.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("provisioning the Asterisk root (scripts/asterisk-root.sh): %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// cacheDir is where built images are kept: next to the Asterisk root, outside the repository.
func cacheDir(t *testing.T) string {
	t.Helper()
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "earpiece", "stacktest")
}

// removeRunDir removes the run's files once nothing is mounted below them any more (the mounts
// lived in the run's own mount namespace, which ended with it).
func removeRunDir(t *testing.T, dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Errorf("reading mountinfo: %v", err)
		return
	}
	if strings.Contains(string(data), " "+dir+"/") {
		t.Errorf("something is still mounted below %s: left in place", dir)
		return
	}
	if t.Failed() && os.Getenv("EARPIECE_TEST_KEEP") != "" {
		t.Logf("kept %s", dir)
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Errorf("removing %s: %v", dir, err)
	}
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedWriter serialises writes of concurrent builds.
type lockedWriter struct {
	w  io.Writer
	mu sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
