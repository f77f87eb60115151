package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/earpiece/earpiece/internal/asterisktest"
	"github.com/earpiece/earpiece/internal/freeport"
	"github.com/earpiece/earpiece/internal/redistest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// The scale run (make scale). Knobs, from the environment:
//
//	EARPIECE_SCALE=1        run it (otherwise TestScale skips at once)
//	SCALE_N="10 50 100"     the numbers of concurrent supervised calls, in order; the run stops
//	                        after the first N the machine does not hold (a join that never hears
//	                        both parties, over 1% of the frames lost, supervisors hearing the agent
//	                        in under 95% of their frames), unless SCALE_KEEP_GOING=1
//	SCALE_WINDOW=10s        each measuring window
//	SCALE_JOIN_RATE=5       supervisors dialling in per second (at 20/s, from about 75 calls on a
//	                        2-core machine, the phones answer INVITEs too late: the rig's limit)
//	SCALE_OUT=dir           where the table goes (default artifacts/scale under the module root)
const envScale = "EARPIECE_SCALE"

// Numbering of the generated phones: agent i is 20000+i, its supervisor 30000+i, its customer
// 40000+i (5 digits, so a ChanSpy channel prefix "PJSIP/2xxxx-" names exactly one agent).
const (
	agentBase      = 20000
	supervisorBase = 30000
	customerBase   = 40000
	maxN           = 9999
	tenant         = "scale"
	teamSize       = 10 // agents (and their supervisors) per hunt group
	chanSpyPrefix  = "*89"
	spyPrefix      = "*90" // the tenant's default spy code
)

// steadyFrames is how many consecutive 20 ms frames make a tone heard (e2etest's rule).
const steadyFrames = 5

// watch is what every phone listens for: the three parties' tones only (fewer Goertzel filters
// per frame than e2etest's list, which the scale run's phones do not need).
var watch = []float64{testphone.ToneCustomer, testphone.ToneAgent, testphone.ToneSupervisor}

func TestMain(m *testing.M) {
	if os.Getenv(envScale) != "" {
		// The phones' media is real time; keep it ahead of other work, as the test Asterisk is.
		if err := asterisktest.RaisePriority(); err != nil {
			fmt.Fprintln(os.Stderr, "scale: running at normal priority:", err)
		}
	}
	os.Exit(m.Run())
}

type knobs struct {
	ns        []int
	window    time.Duration
	joinRate  float64
	out       string
	keepGoing bool
}

func readKnobs(t *testing.T) knobs {
	t.Helper()
	k := knobs{window: 10 * time.Second, joinRate: 5}
	ns := os.Getenv("SCALE_N")
	if ns == "" {
		ns = "10 50 100"
	}
	for _, f := range strings.Fields(ns) {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > maxN {
			t.Fatalf("SCALE_N=%q: %q is not a number of calls in 1..%d", ns, f, maxN)
		}
		k.ns = append(k.ns, n)
	}
	if v := os.Getenv("SCALE_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			t.Fatalf("SCALE_WINDOW=%q: want a duration of at least 1s", v)
		}
		k.window = d
	}
	if v := os.Getenv("SCALE_JOIN_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			t.Fatalf("SCALE_JOIN_RATE=%q: want joins per second > 0", v)
		}
		k.joinRate = r
	}
	k.keepGoing = os.Getenv("SCALE_KEEP_GOING") != ""
	k.out = os.Getenv("SCALE_OUT")
	if k.out == "" {
		k.out = filepath.Join(moduleRoot(t), "artifacts", "scale")
	}
	return k
}

// TestScale is the scale run: for each N of SCALE_N, on an Asterisk and a Redis of its own, N
// customers call N agents; N supervisors join in spy mode through earpiece, then, after they
// left, through Asterisk's ChanSpy; every step is judged by ear and measured (see Markdown's
// legend). The table goes to SCALE_OUT.
func TestScale(t *testing.T) {
	if os.Getenv(envScale) == "" {
		t.Skipf("the scale run: set %s=1 (make scale)", envScale)
	}
	if testing.Short() {
		t.Skip("the scale run needs Asterisk and Redis")
	}
	k := readKnobs(t)
	bin := buildEarpiece(t)
	var rows []Row
	for _, n := range k.ns {
		var row Row
		ok := t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) { row = runN(t, bin, n, k) })
		if row.N == 0 {
			row = Row{N: n, Note: "no result: the run failed before measuring (see the test log)"}
		}
		rows = append(rows, row)
		if !ok && !k.keepGoing {
			t.Logf("stopping at N=%d: the machine does not hold it (see above; SCALE_KEEP_GOING=1 goes on)", n)
			break
		}
	}
	md := Markdown(rows, k.window)
	t.Logf("scale run:\n%s", md)
	writeResults(t, k.out, rows, md)
}

func writeResults(t *testing.T, dir string, rows []Row, md string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	host, _ := os.Hostname()
	head := fmt.Sprintf("# earpiece scale run %s\n\nhost %s, %d CPUs; SCALE_N=%q SCALE_WINDOW=%q SCALE_JOIN_RATE=%q SCALE_KEEP_GOING=%q\n\n",
		stamp, host, runtime.NumCPU(), os.Getenv("SCALE_N"), os.Getenv("SCALE_WINDOW"), os.Getenv("SCALE_JOIN_RATE"), os.Getenv("SCALE_KEEP_GOING"))
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"scale-" + stamp + ".md":   []byte(head + md),
		"scale-" + stamp + ".json": js,
		"latest.md":                []byte(head + md),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("written to %s (scale-%s.md, .json; latest.md)", dir, stamp)
}

// moduleRoot is the directory holding go.mod, above the package's directory (go test's working
// directory).
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

// buildEarpiece builds ./cmd/earpiece into the test's temporary directory: earpiece runs as a
// process of its own, so that /proc shows its CPU and memory apart from the phones'.
func buildEarpiece(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "earpiece")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/earpiece")
	cmd.Dir = moduleRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/earpiece: %v\n%s", err, out)
	}
	return bin
}

// rig is one N's setup: its Asterisk, Redis, earpiece process and phones.
type rig struct {
	t      *testing.T
	n      int
	k      knobs
	ast    *asterisktest.Instance
	astPID int
	rdb    *redis.Client
	ep     *exec.Cmd
	epLog  string
	http   *http.Client

	customers, agents, supervisors []*testphone.Phone
	cust, agentCalls               []*testphone.Call
}

func agentExt(i int) string      { return strconv.Itoa(agentBase + i) }
func supervisorExt(i int) string { return strconv.Itoa(supervisorBase + i) }
func customerExt(i int) string   { return strconv.Itoa(customerBase + i) }

func runN(t *testing.T, bin string, n int, k knobs) Row {
	r := &rig{t: t, n: n, k: k, http: &http.Client{Timeout: 10 * time.Second}}
	r.ast = asterisktest.Start(t)
	rs := redistest.Start(t)
	r.rdb = rs.Client(t)
	r.configureAsterisk()
	r.astPID = r.asteriskPID()
	r.startEarpiece(bin, rs.URL())
	r.makePhones()
	r.connectCalls()
	row := Row{N: n}

	// Earpiece.
	r.settle()
	base := r.window()
	epBase := base.ep
	row.EPBase, row.EPRSSBase = epBase.CPUShare(), epBase.To.RSSKiB
	row.RedisBase = r.usedMemory()
	auditFrom := r.lastAuditID()
	joinFrom := r.sample(r.ep.Process.Pid)
	sups := r.join(spyPrefix, &row.Earpiece)
	joinTo := r.sample(r.ep.Process.Pid)
	// The join phase's CPU beyond what the base rate would have used in the same time.
	extra := float64(joinTo.CPU-joinFrom.CPU) - epBase.CPUShare()*float64(joinTo.At.Sub(joinFrom.At))
	row.EPPerJoin = time.Duration(max(extra, 0) / float64(n))
	row.AuditEntries, row.AuditBytes = r.auditSince(auditFrom)
	r.settle()
	live := r.window()
	row.EPShare, row.EPRSS = live.ep.CPUShare(), live.ep.To.RSSKiB
	row.Earpiece.AstBase = base.ast.CPUShare()
	live.record(&row.Earpiece)
	row.RedisLive = r.usedMemory()
	row.SessionKeyBytes = r.keysUsage("earpiece:v1:{sessions}:*") + r.keysUsage("earpiece:v1:claim:*")
	if sessions := r.liveSessions(); sessions != int64(row.Earpiece.Joined) {
		t.Errorf("earpiece: %d live sessions in Redis, %d supervisors hear the call", sessions, row.Earpiece.Joined)
	}
	r.media(sups, live.ast.From.At, live.ast.To.At, &row.Earpiece)
	r.hangUp(sups)
	waitFor(t, 20*time.Second, "earpiece's sessions to end", func() bool { return r.liveSessions() == 0 })

	// ChanSpy, on the same calls.
	r.loadChanSpy()
	r.settle()
	base = r.window()
	sups = r.join(chanSpyPrefix, &row.ChanSpy)
	r.settle()
	live = r.window()
	row.ChanSpy.AstBase = base.ast.CPUShare()
	live.record(&row.ChanSpy)
	r.media(sups, live.ast.From.At, live.ast.To.At, &row.ChanSpy)
	r.hangUp(sups)

	if ep, cs := row.Earpiece, row.ChanSpy; ep.Failed > 0 || cs.Failed > 0 {
		row.Note = fmt.Sprintf("joins that never heard both parties within 10 s: earpiece %d, ChanSpy %d", ep.Failed, cs.Failed)
		t.Errorf("N=%d: %s", n, row.Note)
	}
	// Where the machine stops holding: more than 1% of the frames lost, or the supervisors
	// hearing the agent in less than 95% of their frames.
	for _, side := range []struct {
		name string
		s    Side
	}{{"earpiece", row.Earpiece}, {"ChanSpy", row.ChanSpy}} {
		if s := side.s; s.LossRatio() > 0.01 || s.SupHears < 0.95 {
			note := fmt.Sprintf("%s: %.2f%% of the frames lost, supervisors heard the agent in %.1f%% of theirs", side.name, s.LossRatio()*100, s.SupHears*100)
			row.Note = strings.TrimPrefix(row.Note+"; "+note, "; ")
			t.Errorf("N=%d does not hold: %s", n, note)
		}
	}
	return row
}

// configureAsterisk adds what N calls need to the private Asterisk's configuration, without
// touching asterisk-conf/: the phones (an extra pjsip file), their dialplan (an extra extensions
// file) and an RTP port range wide enough, each loaded through ARI's module reload.
func (r *rig) configureAsterisk() {
	t := r.t
	etc := r.ast.EtcDir()
	var p strings.Builder
	p.WriteString("; generated by internal/scale: the scale run's phones\n")
	for i := range r.n {
		for _, e := range []struct{ ext, ctx string }{
			{agentExt(i), "scale-agents"}, {supervisorExt(i), "scale-supervisors"}, {customerExt(i), "scale-customers"},
		} {
			fmt.Fprintf(&p, "[%[1]s](phone)\ncontext=%[2]s\naors=%[1]s\ncallerid=\"%[1]s\" <%[1]s>\n[%[1]s](phone-aor)\nqualify_frequency=0\n", e.ext, e.ctx)
		}
	}
	writeFile(t, filepath.Join(etc, "pjsip_scale.conf"), p.String())
	appendFile(t, filepath.Join(etc, "pjsip.conf"), "\n#include pjsip_scale.conf\n")

	writeFile(t, filepath.Join(etc, "extensions_scale.conf"), `; generated by internal/scale
[scale-customers]
exten => _2XXXX,1,Dial(PJSIP/${EXTEN},30)
 same => n,Hangup()

[scale-agents]

[scale-supervisors]
include => earpiece-`+tenant+`
include => scale-chanspy
`)
	appendFile(t, filepath.Join(etc, "extensions.conf"), "\n#include extensions_scale.conf\n#tryinclude extensions_scale_chanspy.conf\n")

	// Three RTP sessions a supervised call (customer, agent, supervisor), two ports each: far
	// more than asterisktest's 200-port block. The range lies in the kernel's ephemeral range,
	// where no test server is told to listen (internal/freeport hands out ports below it), so
	// Asterisk takes only ports nobody holds: one bound already is skipped (res_rtp_asterisk
	// tries the next).
	writeFile(t, filepath.Join(etc, "rtp.conf"), "[general]\nrtpstart=40000\nrtpend=60000\nstrictrtp=no\n")

	for _, m := range []string{"res_rtp_asterisk.so", "res_pjsip.so", "pbx_config.so"} {
		r.ari(http.MethodPut, "/asterisk/modules/"+m, http.StatusNoContent)
	}
	last := customerExt(r.n - 1)
	waitFor(t, 10*time.Second, "the generated endpoints", func() bool {
		return r.ariStatus(http.MethodGet, "/endpoints/PJSIP/"+last) == http.StatusOK
	})
}

// loadChanSpy writes the ChanSpy codes (*89<agent>: listen to both directions of the agent's
// channel, quietly, until it hangs up) into an extra dialplan file, loads app_chanspy (not in
// asterisk-conf's modules.conf) and reloads the dialplan, through ARI.
func (r *rig) loadChanSpy() {
	writeFile(r.t, filepath.Join(r.ast.EtcDir(), "extensions_scale_chanspy.conf"), `; generated by internal/scale
[scale-chanspy]
exten => _`+chanSpyPrefix+`2XXXX,1,Answer()
 same => n,ChanSpy(PJSIP/${EXTEN:3}-,qE)
 same => n,Hangup()
`)
	if st := r.ariStatus(http.MethodPost, "/asterisk/modules/app_chanspy.so"); st != http.StatusNoContent && st != http.StatusConflict {
		r.t.Fatalf("loading app_chanspy through ARI: %d", st)
	}
	r.ari(http.MethodPut, "/asterisk/modules/pbx_config.so", http.StatusNoContent)
	waitFor(r.t, 10*time.Second, "the ChanSpy codes", func() bool {
		out, _ := r.ast.CLI(context.Background(), "dialplan show scale-chanspy")
		return strings.Contains(out, "ChanSpy")
	})
}

// asteriskPID reads the pid Asterisk wrote into its run directory (astrundir, beside etc): the
// process that chroot and nice exec'd into, so its /proc entry is Asterisk's own.
func (r *rig) asteriskPID() int {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(r.ast.EtcDir()), "run", "asterisk.pid"))
	if err != nil {
		r.t.Fatalf("Asterisk's pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		r.t.Fatalf("Asterisk's pid file: %v", err)
	}
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if strings.TrimSpace(string(comm)) != "asterisk" {
		r.t.Fatalf("pid %d is %q, not asterisk", pid, comm)
	}
	return pid
}

// startEarpiece runs `earpiece serve` on a generated configuration: the private Asterisk and
// Redis, a loopback HTTP port, the rendered dialplan written into Asterisk's etc directory, and
// the tenant "scale" with N agents and N supervisors in hunt groups of teamSize, each supervisor
// allowed to supervise its group. It runs at the phones' and Asterisk's niceness, so that the
// phones' load does not starve it more than it would starve Asterisk.
func (r *rig) startEarpiece(bin, redisURL string) {
	t := r.t
	ports, err := freeport.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Release)
	listen := fmt.Sprintf("127.0.0.1:%d", ports.Port(0))
	var c strings.Builder
	fmt.Fprintf(&c, "ari: {url: %q, user: %q, app: earpiece}\nredis: {url: %q}\nhttp: {listen: %q}\n",
		r.ast.ARIURL, r.ast.User, redisURL, listen)
	fmt.Fprintf(&c, "dialplan: {extensions_file: %q, features_file: %q}\n",
		filepath.Join(r.ast.EtcDir(), "extensions_earpiece.conf"), filepath.Join(r.ast.EtcDir(), "features_earpiece.conf"))
	fmt.Fprintf(&c, "tenants:\n  - id: %s\n    name: Scale run\n    supervision_enabled: true\n    extensions:\n", tenant)
	for i := range r.n {
		fmt.Fprintf(&c, "      - {number: %q, endpoint: PJSIP/%s, name: Agent %d, role: agent}\n", agentExt(i), agentExt(i), i)
		fmt.Fprintf(&c, "      - {number: %q, endpoint: PJSIP/%s, name: Supervisor %d, role: supervisor}\n", supervisorExt(i), supervisorExt(i), i)
	}
	c.WriteString("    hunt_groups:\n")
	for g := 0; g*teamSize < r.n; g++ {
		fmt.Fprintf(&c, "      - name: team%d\n        members:\n", g)
		for i := g * teamSize; i < min((g+1)*teamSize, r.n); i++ {
			fmt.Fprintf(&c, "          - {extension: %q}\n          - {extension: %q, supervision_allowed: true}\n", agentExt(i), supervisorExt(i))
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "earpiece.yaml")
	writeFile(t, cfg, c.String())
	r.epLog = filepath.Join(dir, "earpiece.log")
	logf, err := os.Create(r.epLog)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("nice", "-n", strconv.Itoa(asterisktest.MediaNice), bin, "serve", "--config", cfg)
	cmd.Env = append(os.Environ(), "EARPIECE_ARI_PASSWORD="+r.ast.Password, "EARPIECE_INSTANCE=scale", "EARPIECE_LOG_LEVEL=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting earpiece: %v", err)
	}
	r.ep = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(r.epLog)
			t.Logf("earpiece's log (%s), last 4 KiB:\n%s", r.epLog, b[max(0, len(b)-4096):])
		}
	})
	waitFor(t, 20*time.Second, "earpiece ready", func() bool {
		select {
		case <-exited:
			b, _ := os.ReadFile(r.epLog)
			t.Fatalf("earpiece exited:\n%s", b)
		default:
		}
		resp, err := r.http.Get("http://" + listen + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	waitFor(t, 20*time.Second, "earpiece's dialplan loaded", func() bool {
		out, _ := r.ast.CLI(context.Background(), "dialplan show earpiece-"+tenant)
		return strings.Contains(out, "Stasis(earpiece")
	})
}

// makePhones registers the 3N phones, a few at a time.
func (r *rig) makePhones() {
	mk := func(user string, hz float64) *testphone.Phone {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p, err := testphone.New(ctx, testphone.Config{
			User: user, Server: r.ast.SIPAddr(), ToneHz: hz, Incoming: testphone.AutoAnswer,
			Detector: testphone.Detector{Watch: watch},
		})
		if err != nil {
			r.t.Errorf("phone %s: %v", user, err)
			return nil
		}
		if err := p.Register(ctx); err != nil {
			p.Close()
			r.t.Errorf("register %s: %v", user, err)
			return nil
		}
		return p
	}
	r.customers, r.agents, r.supervisors = make([]*testphone.Phone, r.n), make([]*testphone.Phone, r.n), make([]*testphone.Phone, r.n)
	parallel(r.n, 16, func(i int) {
		r.agents[i] = mk(agentExt(i), testphone.ToneAgent)
		r.supervisors[i] = mk(supervisorExt(i), testphone.ToneSupervisor)
		r.customers[i] = mk(customerExt(i), testphone.ToneCustomer)
	})
	r.t.Cleanup(func() {
		parallel(r.n, 32, func(i int) {
			for _, p := range []*testphone.Phone{r.customers[i], r.agents[i], r.supervisors[i]} {
				if p != nil {
					p.Close()
				}
			}
		})
	})
	if r.t.Failed() {
		r.t.FailNow()
	}
}

// connectCalls has every customer call its agent and waits until both hear each other.
func (r *rig) connectCalls() {
	r.cust, r.agentCalls = make([]*testphone.Call, r.n), make([]*testphone.Call, r.n)
	parallel(r.n, 8, func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cc, err := r.customers[i].Call(ctx, agentExt(i))
		if err != nil {
			r.t.Errorf("customer %s calls %s: %v", customerExt(i), agentExt(i), err)
			return
		}
		r.cust[i] = cc
		ac, err := r.agents[i].AwaitIncoming(ctx)
		if err != nil {
			r.t.Errorf("agent %s gets the call: %v", agentExt(i), err)
			return
		}
		r.agentCalls[i] = ac
		if _, err := cc.AwaitToneSince(ctx, time.Time{}.Add(1), testphone.ToneAgent, true, steadyFrames); err != nil {
			r.t.Errorf("customer %s never heard the agent: %v", customerExt(i), err)
		}
		if _, err := ac.AwaitToneSince(ctx, time.Time{}.Add(1), testphone.ToneCustomer, true, steadyFrames); err != nil {
			r.t.Errorf("agent %s never heard the customer: %v", agentExt(i), err)
		}
	})
	r.t.Cleanup(func() { r.hangUp(r.cust) })
	if r.t.Failed() {
		r.t.FailNow()
	}
}

// join has the N supervisors dial prefix+agent, paced at the join rate, and waits until each
// hears both parties steadily (or 10 s pass). The latency of each is answered -> the later of
// the two tones' first steady frame (the first of 5 consecutive frames carrying it), as
// TestE2EModesByEar measures it.
func (r *rig) join(prefix string, side *Side) []*testphone.Call {
	calls := make([]*testphone.Call, r.n)
	lat := make([]time.Duration, r.n)
	joined := make([]bool, r.n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.k.joinRate))
	defer tick.Stop()
	for i := range r.n {
		if i > 0 {
			<-tick.C
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := r.supervisors[i].Call(ctx, prefix+agentExt(i))
			if err != nil {
				r.t.Logf("supervisor %s dials %s%s: %v", supervisorExt(i), prefix, agentExt(i), err)
				return
			}
			// Answered: when Call returned (200 OK, ACK sent), or the first frame received if
			// earlier: a goroutine that got the CPU late must not see the audio as older than
			// the answer.
			answered := time.Now()
			if fs := c.Frames(); len(fs) > 0 && fs[0].At.Before(answered) {
				answered = fs[0].At
			}
			calls[i] = c
			var last time.Time
			for _, hz := range []float64{testphone.ToneCustomer, testphone.ToneAgent} {
				at, err := c.AwaitToneSince(ctx, time.Time{}.Add(1), hz, true, steadyFrames)
				if err != nil {
					r.t.Logf("supervisor %s (%s) never heard %v Hz: %v", supervisorExt(i), prefix, hz, err)
					return
				}
				if at.After(last) {
					last = at
				}
			}
			lat[i], joined[i] = last.Sub(answered), true
		}()
	}
	wg.Wait()
	for i, d := range lat {
		if joined[i] {
			side.Joins = append(side.Joins, d)
		}
	}
	side.Joined, side.Failed = len(side.Joins), r.n-len(side.Joins)
	side.JoinP50, side.JoinP95, side.JoinMax = Percentile(side.Joins, 50), Percentile(side.Joins, 95), Percentile(side.Joins, 100)
	return calls
}

// media judges the window [from, to) at every phone: frames lost (RTP sequence gaps), the longest
// stretch without packets, and how much of it the supervisors heard the agent.
func (r *rig) media(sups []*testphone.Call, from, to time.Time, side *Side) {
	all := append(append(append([]*testphone.Call(nil), r.cust...), r.agentCalls...), sups...)
	for _, c := range all {
		if c == nil {
			continue
		}
		var fs []RTPFrame
		for _, f := range c.Frames() {
			if !f.At.Before(from) && f.At.Before(to) {
				fs = append(fs, RTPFrame{SSRC: f.SSRC, Seq: f.Seq})
			}
		}
		exp, got := Loss(fs)
		side.Expected += exp
		side.Lost += exp - got
		for _, g := range c.Gaps(from, to) {
			side.WorstGap = max(side.WorstGap, g.Missing)
		}
	}
	var heard, frames int
	for _, c := range sups {
		if c == nil {
			continue
		}
		p := c.Heard(testphone.ToneAgent, from, to)
		heard, frames = heard+p.Present, frames+p.Frames
	}
	if frames > 0 {
		side.SupHears = float64(heard) / float64(frames)
	}
}

func (r *rig) hangUp(calls []*testphone.Call) {
	parallel(len(calls), 16, func(i int) {
		if calls[i] == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = calls[i].Hangup(ctx)
	})
}

// settle lets what the last step started (re-INVITEs, bridge changes, Go's GC after a burst)
// pass before a window is measured.
func (r *rig) settle() { time.Sleep(2 * time.Second) }

// measured is one measuring window: earpiece, Asterisk, this process (the phones) and the
// whole machine (other work included: the run shares it).
type measured struct {
	ep, ast, phones Window
	busy            float64 // share of all CPUs busy
}

// window measures one measuring window.
func (r *rig) window() measured {
	var m measured
	sys0 := r.systemCPU()
	m.ep.From, m.ast.From, m.phones.From = r.sample(r.ep.Process.Pid), r.sample(r.astPID), r.sample(os.Getpid())
	time.Sleep(r.k.window)
	m.ep.To, m.ast.To, m.phones.To = r.sample(r.ep.Process.Pid), r.sample(r.astPID), r.sample(os.Getpid())
	m.busy = BusyShare(sys0, r.systemCPU())
	return m
}

func (r *rig) systemCPU() SystemCPU {
	s, err := ReadSystemCPU()
	if err != nil {
		r.t.Fatalf("reading /proc/stat: %v", err)
	}
	return s
}

// record keeps a supervised window's figures of the machine in side.
func (m measured) record(side *Side) {
	side.AstShare, side.Phones, side.Busy = m.ast.CPUShare(), m.phones.CPUShare(), m.busy
}

func (r *rig) sample(pid int) Sample {
	s, err := ReadSample(pid)
	if err != nil {
		r.t.Fatalf("reading /proc of %d: %v", pid, err)
	}
	return s
}

func (r *rig) usedMemory() int64 {
	info, err := r.rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		r.t.Fatalf("INFO memory: %v", err)
	}
	n, ok := InfoInt(ParseInfo(info), "used_memory")
	if !ok {
		r.t.Fatalf("INFO memory has no used_memory:\n%s", info)
	}
	return n
}

// memoryUsage is MEMORY USAGE of key (all of it: SAMPLES 0), 0 when it does not exist.
func (r *rig) memoryUsage(key string) int64 {
	n, err := r.rdb.MemoryUsage(context.Background(), key, 0).Result()
	if errors.Is(err, redis.Nil) {
		return 0
	}
	if err != nil {
		r.t.Fatalf("MEMORY USAGE %s: %v", key, err)
	}
	return n
}

// keysUsage is the total MEMORY USAGE of the keys matching pattern.
func (r *rig) keysUsage(pattern string) int64 {
	var total int64
	iter := r.rdb.Scan(context.Background(), 0, pattern, 1000).Iterator()
	for iter.Next(context.Background()) {
		total += r.memoryUsage(iter.Val())
	}
	if err := iter.Err(); err != nil {
		r.t.Fatalf("SCAN %s: %v", pattern, err)
	}
	return total
}

// auditKey is the tenant's audit stream (store: keyAudit).
const auditKey = "earpiece:v1:audit:" + tenant

// lastAuditID is the id of the newest entry of the tenant's audit trail ("0" when empty).
func (r *rig) lastAuditID() string {
	es, err := r.rdb.XRevRangeN(context.Background(), auditKey, "+", "-", 1).Result()
	if err != nil {
		r.t.Fatalf("XREVRANGE %s: %v", auditKey, err)
	}
	if len(es) == 0 {
		return "0"
	}
	return es[0].ID
}

// auditSince counts the audit entries after id and their payload (field names and values, as
// written): MEMORY USAGE of a stream is no measure of its growth (Redis 7.0 reports whole
// listpack nodes), the payload is.
func (r *rig) auditSince(id string) (entries, bytes int64) {
	es, err := r.rdb.XRange(context.Background(), auditKey, "("+id, "+").Result()
	if err != nil {
		r.t.Fatalf("XRANGE %s: %v", auditKey, err)
	}
	for _, e := range es {
		for k, v := range e.Values {
			bytes += int64(len(k) + len(fmt.Sprint(v)))
		}
	}
	return int64(len(es)), bytes
}

// liveSessions is the size of the tenant's live-session index (store: keyTenant).
func (r *rig) liveSessions() int64 {
	n, err := r.rdb.SCard(context.Background(), "earpiece:v1:{sessions}:tenant:"+tenant).Result()
	if err != nil {
		r.t.Fatalf("SCARD: %v", err)
	}
	return n
}

// ari makes one ARI request and fails the test unless it answers want.
func (r *rig) ari(method, path string, want int) {
	if got := r.ariStatus(method, path); got != want {
		r.t.Fatalf("ARI %s %s: %d, want %d", method, path, got, want)
	}
}

func (r *rig) ariStatus(method, path string) int {
	req, err := http.NewRequest(method, r.ast.ARIURL+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	req.SetBasicAuth(r.ast.User, r.ast.Password)
	resp, err := r.http.Do(req)
	if err != nil {
		r.t.Fatalf("ARI %s %s: %v", method, path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// parallel runs f(0..n-1) with at most width at a time.
func parallel(n, width int, f func(i int)) {
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path, body string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(body); err != nil {
		t.Fatal(err)
	}
}
