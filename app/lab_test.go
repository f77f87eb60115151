package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/earpiece/earpiece/ari"
	"github.com/earpiece/earpiece/dialplan"
	"github.com/earpiece/earpiece/internal/e2etest"
	"github.com/earpiece/earpiece/internal/testphone"
)

// The supervision lab (`make lab`): mode switches, the gaps around them, a digit pressed while
// talking, and joins, measured for earpiece and for Asterisk's own ChanSpy side by side, on one
// Asterisk of the lab's own with the same three phones, judged only by what the phones hear
// (lab_report_test.go has the judgement, unit-tested on synthetic frame logs).
//
// One run of a system: the customer (800, 440 Hz) calls the agent (744, 1000 Hz); the supervisor
// (700, 2000 Hz) dials the system's spy code and, keeping its tone during each digit (the issue's
// method: testphone's SetKeepAudioDuringDTMF), makes the six switches
// spy->whisper->barge->spy->barge->whisper->spy, then goes to whisper and presses the whisper digit
// (which changes nothing) with a normal phone (the events replace its audio) and with one that
// keeps its audio, then the same in barge; then everyone hangs up. The runs of the systems are
// interleaved (A B A B ...) so that the machine's noise falls on both alike. A long run
// (LAB_MINUTES) keeps one session per system and switches every LAB_SWITCH_EVERY.
//
// Knobs (environment): EARPIECE_LAB=1 runs it; LAB_RUNS (5), LAB_MINUTES (0: no long run; may be
// fractional), LAB_SYSTEMS (earpiece,chanspy), LAB_SWITCH_EVERY (3s). The report goes to stdout
// and, as Markdown and JSON, to $EARPIECE_TEST_ARTIFACTS/lab/ (default artifacts/lab/).

const (
	labChanSpyCode  = "*77" // + the agent's extension; matches no earpiece code
	labChanSpyFile  = "lab_chanspy.conf"
	labChanSpyCtx   = "earpiece-lab-chanspy"
	labChanSpyMark  = "EARPIECE_LAB_CHANSPY"
	labHold         = 800 * time.Millisecond // after a digit's end, before the next one (> labPost)
	labSettle       = 500 * time.Millisecond // after the join is heard, before the first digit
	labJoinLimit    = 3 * time.Second
	labSlowAnswer   = time.Second // an INVITE answered later than this is reported
	labAgentExten   = "744"
	labSystemEP     = "earpiece"
	labSystemSpy    = "chanspy"
	labDefaultRuns  = 5
	labDefaultEvery = 3 * time.Second
)

// labSystem is a supervision system under test: what the supervisor dials and presses.
type labSystem struct {
	name   string
	code   string
	digits map[dialplan.Mode]string
}

var labSystems = map[string]labSystem{
	labSystemEP: {labSystemEP, "*90" + labAgentExten,
		map[dialplan.Mode]string{dialplan.Spy: "0", dialplan.Whisper: "1", dialplan.Barge: "2"}},
	// ChanSpy's d option: 4 spy, 5 whisper, 6 barge.
	labSystemSpy: {labSystemSpy, labChanSpyCode + labAgentExten,
		map[dialplan.Mode]string{dialplan.Spy: "4", dialplan.Whisper: "5", dialplan.Barge: "6"}},
}

type labKnobs struct {
	runs    int
	minutes float64
	systems []string
	every   time.Duration
}

func labKnobsFromEnv(t *testing.T) labKnobs {
	t.Helper()
	k := labKnobs{runs: labDefaultRuns, systems: []string{labSystemEP, labSystemSpy}, every: labDefaultEvery}
	var errs []error
	if v := os.Getenv("LAB_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("LAB_RUNS=%q: want a count", v))
		}
		k.runs = n
	}
	if v := os.Getenv("LAB_MINUTES"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f < 0 {
			errs = append(errs, fmt.Errorf("LAB_MINUTES=%q: want minutes", v))
		}
		k.minutes = f
	}
	if v := os.Getenv("LAB_SYSTEMS"); v != "" {
		k.systems = nil
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if _, ok := labSystems[s]; !ok {
				errs = append(errs, fmt.Errorf("LAB_SYSTEMS: unknown system %q (earpiece, chanspy)", s))
			}
			k.systems = append(k.systems, s)
		}
	}
	if v := os.Getenv("LAB_SWITCH_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < labHold {
			errs = append(errs, fmt.Errorf("LAB_SWITCH_EVERY=%q: want a duration of at least %v", v, labHold))
		}
		k.every = d
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return k
}

// TestLab is the supervision lab; EARPIECE_LAB=1 (make lab) runs it.
func TestLab(t *testing.T) {
	if os.Getenv("EARPIECE_LAB") == "" {
		t.Skip("the supervision lab: set EARPIECE_LAB=1 (make lab)")
	}
	k := labKnobsFromEnv(t)
	started := time.Now()
	r := newLabRig(t)
	for _, s := range k.systems {
		if s == labSystemSpy {
			installChanSpy(t, r)
		}
	}
	ph := labPhones{
		customer: r.Phone("800", hzCustomer, testphone.AutoAnswer),
		agent:    r.Phone(labAgentExten, hzAgent, testphone.AutoAnswer),
		sup:      r.Phone("700", hzSupervisor, testphone.AutoAnswer),
	}
	rep := &labReport{Started: started, Runs: k.runs, Minutes: k.minutes, Host: labHost(),
		GoalMedia: msDur(goalMedian), GoalP95: msDur(goalP95), Notes: labNotes(k)}
	results := map[string]*labSystemResult{}
	for _, s := range k.systems {
		results[s] = &labSystemResult{Name: s}
		rep.Systems = append(rep.Systems, results[s])
	}
	for i := range k.runs {
		for _, s := range k.systems {
			r.labRun(labSystems[s], ph, results[s], i)
		}
	}
	if k.minutes > 0 {
		for _, s := range k.systems {
			results[s].Long = r.labLongRun(labSystems[s], ph, results[s], time.Duration(k.minutes*float64(time.Minute)), k.every)
		}
	}
	rep.Took = msDur(time.Since(started))
	rep.Host += ", at the end " + labLoad()
	md := rep.markdown()
	fmt.Fprint(os.Stdout, "\n"+md)
	writeLabReport(t, rep, md)
}

type labPhones struct{ customer, agent, sup *testphone.Phone }

// newLabRig is newRig on an Asterisk of the lab's own: the lab adds ChanSpy to its dialplan.
func newLabRig(t *testing.T) *rig {
	t.Helper()
	return startRig(t, e2etest.NewPrivate(t, owned), "lab")
}

// installChanSpy gives the lab's Asterisk a ChanSpy code in the supervisors' context, from-acme:
// *77<ext> answers and spies on PJSIP/<ext>'s channel, quietly (q: no beep, no name), switching
// modes with DTMF (d: 4 spy, 5 whisper, 6 barge), and leaves when that channel hangs up (E).
// Answer() first (ChanSpy would answer anyway): answer -> heard is then ChanSpy's own start, as it
// is earpiece's, whose app answers the supervisor when it joins them. It loads app_chanspy (the
// shipped modules.conf does not) and reloads pbx_config through ARI, as the DialplanWriter does,
// then waits until the marker global reads back.
func installChanSpy(t *testing.T, r *rig) {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.Ctx, 20*time.Second)
	defer cancel()
	etc := r.Ast.EtcDir()
	conf := fmt.Sprintf(`; written by the supervision lab (app/lab_test.go); never shipped
[globals]
%[1]s=1

[%[2]s]
exten => _%[3]sX.,1,Answer()
 same => n,ChanSpy(PJSIP/${EXTEN:%[4]d}-,qdE)
 same => n,Hangup()
`, labChanSpyMark, labChanSpyCtx, labChanSpyCode, len(labChanSpyCode))
	if err := os.WriteFile(filepath.Join(etc, labChanSpyFile), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	extPath := filepath.Join(etc, "extensions.conf")
	ext, err := os.ReadFile(extPath)
	if err != nil {
		t.Fatal(err)
	}
	const supCtx = "\n[from-acme]\n"
	if !strings.Contains(string(ext), supCtx) {
		t.Fatalf("extensions.conf has no %q context", strings.TrimSpace(supCtx))
	}
	patched := strings.Replace(string(ext), supCtx, supCtx+"include => "+labChanSpyCtx+"\n", 1) + "\n#include " + labChanSpyFile + "\n"
	if err := os.WriteFile(extPath, []byte(patched), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Client.GetModule(ctx, "app_chanspy.so"); errors.Is(err, ari.ErrNotFound) {
		if err := r.Client.LoadModule(ctx, "app_chanspy.so"); err != nil {
			t.Fatalf("load app_chanspy: %v", err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
	if err := r.Client.ReloadModule(ctx, PBXConfigModule); err != nil {
		t.Fatalf("reload %s: %v", PBXConfigModule, err)
	}
	e2etest.WaitFor(t, 5*time.Second, "the lab's ChanSpy dialplan loaded", func() bool {
		v, err := r.Client.GlobalVar(ctx, labChanSpyMark)
		return err == nil && v == "1"
	})
}

// labSession is one supervision in progress: the call, the supervisor's call, the digits sent.
type labSession struct {
	r       *rig
	sys     labSystem
	ctx     context.Context
	parties e2etest.Parties
	sup     *testphone.Call
	dial    time.Time
	answer  time.Time
	heard   time.Time
}

// labStart connects the customer to the agent and has the supervisor dial the system's code; ok is
// false (with a failure recorded) when the supervisor never heard the call.
func (r *rig) labStart(ctx context.Context, sys labSystem, ph labPhones, res *labSystemResult, what string) (*labSession, bool) {
	s := &labSession{r: r, sys: sys, ctx: ctx}
	s.parties = r.Connect(ph.customer, ph.agent, labAgentExten)
	s.dial = time.Now()
	sup, err := ph.sup.Call(ctx, sys.code)
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("%s: dial %s: %v", what, sys.code, err))
		s.end()
		return nil, false
	}
	s.answer, s.sup = time.Now(), sup
	if took := s.answer.Sub(s.dial); took > labSlowAnswer {
		// Not the system's join: SIP between the phone and Asterisk. Kept in the figures (the
		// definition is the definition), said in the report, with what Asterisk logged.
		res.Failures = append(res.Failures, fmt.Sprintf("%s: the supervisor's INVITE was answered after %v", what, took.Round(time.Millisecond)))
		r.T.Logf("%s: slow answer (%v); Asterisk's log:\n%s", what, took, r.Ast.LogTail(30))
	}
	jctx, cancel := context.WithTimeout(ctx, labJoinLimit)
	defer cancel()
	for _, hz := range []float64{hzCustomer, hzAgent} {
		at, err := sup.AwaitToneSince(jctx, s.dial, hz, true, labSteady)
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: the supervisor never heard %v Hz: %v", what, hz, err))
			s.end()
			return nil, false
		}
		if at.After(s.heard) {
			s.heard = at
		}
	}
	time.Sleep(time.Until(s.heard.Add(labSettle)))
	return s, true
}

// press sends the digit of mode m (keeping the supervisor's audio or not) and holds until hold
// after its end.
func (s *labSession) press(m dialplan.Mode, keep bool, hold time.Duration) (labDigitSent, error) {
	s.sup.SetKeepAudioDuringDTMF(keep)
	if err := s.sup.SendDTMF(s.ctx, s.sys.digits[m]); err != nil {
		return labDigitSent{}, err
	}
	sent := s.sup.DTMFSent()
	ev := sent[len(sent)-1]
	time.Sleep(time.Until(ev.End.Add(hold)))
	return labDigitSent{Start: ev.Start, End: ev.End}, nil
}

// end hangs everyone up and waits until Asterisk has no channel left and earpiece no session.
func (s *labSession) end() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.sup != nil {
		_ = s.sup.Hangup(ctx)
	}
	_ = s.parties.Customer.Hangup(ctx)
	_ = s.parties.Agent.Hangup(ctx)
	e2etest.WaitFor(s.r.T, 10*time.Second, "no channel and no session left", func() bool {
		chs, err := s.r.Client.ListChannels(ctx)
		return err == nil && len(chs) == 0 && len(s.r.app.Live()) == 0
	})
}

// logs are the session's frame logs and senders' stalls, read once it ended.
func (s *labSession) logs() labLogs {
	return labLogs{
		Frames: map[string][]testphone.Frame{
			partyCustomer: s.parties.Customer.Frames(), partyAgent: s.parties.Agent.Frames(), partySupervisor: s.sup.Frames(),
		},
		Stall: map[string]stallFunc{
			partyCustomer: s.parties.Customer.SenderStall, partyAgent: s.parties.Agent.SenderStall, partySupervisor: s.sup.SenderStall,
		},
	}
}

type labSwitchMade struct {
	from, to dialplan.Mode
	d        labDigitSent
}

type labDigitMade struct {
	mode dialplan.Mode
	keep bool
	d    labDigitSent
}

// labRun is one run of sys (see the file's comment).
func (r *rig) labRun(sys labSystem, ph labPhones, res *labSystemResult, run int) {
	t := r.T
	what := fmt.Sprintf("%s run %d", sys.name, run+1)
	ctx, cancel := context.WithTimeout(r.Ctx, time.Minute)
	defer cancel()
	s, ok := r.labStart(ctx, sys, ph, res, what)
	if !ok {
		t.Logf("%s: no join (%s)", what, res.Failures[len(res.Failures)-1])
		return
	}
	var switches []labSwitchMade
	var digits []labDigitMade
	err := func() error {
		mode := dialplan.Spy
		for _, m := range labSwitchOrder {
			d, err := s.press(m, true, labHold)
			if err != nil {
				return err
			}
			switches = append(switches, labSwitchMade{mode, m, d})
			mode = m
		}
		for _, m := range []dialplan.Mode{dialplan.Whisper, dialplan.Barge} {
			if _, err := s.press(m, true, labHold); err != nil { // the switch to m, not judged
				return err
			}
			for _, keep := range []bool{false, true} {
				d, err := s.press(m, keep, labHold)
				if err != nil {
					return err
				}
				digits = append(digits, labDigitMade{m, keep, d})
			}
		}
		return nil
	}()
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", what, err))
	}
	s.end()
	l := s.logs()
	res.Joins = append(res.Joins, judgeJoin(l.Frames[partySupervisor], s.dial, s.answer, s.answer.Add(labJoinLimit)))
	var lat []string
	for _, x := range switches {
		sr := judgeSwitch(l, x.from, x.to, x.d)
		res.Switches = append(res.Switches, sr)
		lat = append(lat, fmt.Sprintf("%s %s%s", sr.name(), sr.Latency, map[bool]string{true: "", false: " (not heard)"}[sr.Heard]))
	}
	for _, x := range digits {
		res.Digits = append(res.Digits, judgeDigit(l, x.mode, x.keep, x.d))
	}
	j := res.Joins[len(res.Joins)-1]
	t.Logf("%s: join %s ms after answer; switches (ms): %s", what, j.AnswerToHeard, strings.Join(lat, ", "))
}

// labLongRun keeps one session of sys for d, switching every interval, and tallies what each
// party lost over all of it.
func (r *rig) labLongRun(sys labSystem, ph labPhones, res *labSystemResult, d, every time.Duration) *longResult {
	t := r.T
	what := sys.name + " long run"
	ctx, cancel := context.WithTimeout(r.Ctx, d+time.Minute)
	defer cancel()
	s, ok := r.labStart(ctx, sys, ph, res, what)
	if !ok {
		return nil
	}
	var switches []labSwitchMade
	mode := dialplan.Spy
	deadline := time.Now().Add(d)
	for i := 0; time.Now().Before(deadline); i++ {
		m := labSwitchOrder[i%len(labSwitchOrder)]
		dg, err := s.press(m, true, every)
		if err != nil {
			res.Failures = append(res.Failures, fmt.Sprintf("%s: %v", what, err))
			break
		}
		switches = append(switches, labSwitchMade{mode, m, dg})
		mode = m
	}
	until := time.Now()
	s.end()
	l := s.logs()
	out := &longResult{Duration: msDur(until.Sub(s.heard)), Switches: len(switches),
		Streams: map[string]gapPair{}, SwitchGaps: map[string]gapPair{}}
	from := s.heard.Add(labSettle)
	for _, st := range alwaysHeard {
		out.Streams[st.String()] = l.gaps(st, from, until, labSpan{})
	}
	var lat []msDur
	for _, x := range switches {
		sr := judgeSwitch(l, x.from, x.to, x.d)
		if sr.Heard {
			lat = append(lat, sr.Latency)
		} else {
			out.NotHeard++
		}
		for k, g := range sr.Gaps {
			p := out.SwitchGaps[k]
			p.merge(g)
			out.SwitchGaps[k] = p
		}
	}
	out.Latency = summarize(lat)
	t.Logf("%s: %d switches in %.1f min, latency median %s ms", what, out.Switches, time.Duration(out.Duration).Minutes(), out.Latency.Median)
	return out
}

func labNotes(k labKnobs) []string {
	return []string{
		"Same Asterisk (a private test instance), same phones: customer 800 (440 Hz) calls agent 744 (1000 Hz); supervisor 700 (2000 Hz).",
		"earpiece: dials *90744, switches with 0/1/2. chanspy: dials *77744 = Answer(), ChanSpy(PJSIP/744-,qdE), switches with 4/5/6.",
		"Switches and the long run: the supervisor's phone keeps its audio during each digit (testphone SetKeepAudioDuringDTMF); times are from the digit's end packets as the phone sent them.",
		"A listener's change is the first of 5 frames with the supervisor's tone (start hearing), or the first frame after the last one with it, not before the digit's end (stop hearing); a switch's latency is its last listener's.",
		"Percentiles by nearest rank. Timing is noisy on a shared machine; stall-adjusted figures discount the sending phone's own CPU stalls only.",
		fmt.Sprintf("Runs interleaved in the order %s; long run switches every %v.", strings.Join(k.systems, ", "), k.every),
	}
}

func labHost() string {
	return fmt.Sprintf("%d CPUs, %s, load average at the start %s", runtime.NumCPU(), runtime.Version(), labLoad())
}

// labLoad is the machine's load average (1, 5, 15 min): other work on it shows in the timings.
func labLoad() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			return strings.Join(f[:3], " ")
		}
	}
	return "?"
}

// writeLabReport writes the report as Markdown and JSON under $EARPIECE_TEST_ARTIFACTS/lab
// (artifacts/lab by default; artifacts/ is not committed).
func writeLabReport(t *testing.T, rep *labReport, md string) {
	t.Helper()
	dir := os.Getenv("EARPIECE_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, "lab"))
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("lab report directory: %v", err)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "lab-"+rep.Started.UTC().Format("20060102T150405Z"))
	for name, body := range map[string][]byte{base + ".md": []byte(md), base + ".json": js} {
		if err := os.WriteFile(name, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("lab report: %s.md, %s.json", base, base)
}
