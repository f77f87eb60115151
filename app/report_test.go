package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/earpiece/earpiece/store"
)

// reportDay is the fixture's first day; its window is two days, read one hour on.
var reportDay = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func at(day int, hms string) time.Time {
	t, err := time.Parse("15:04:05.000", hms)
	if err != nil {
		panic(err)
	}
	return reportDay.AddDate(0, 0, day).Add(time.Duration(t.Hour())*time.Hour +
		time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second + time.Duration(t.Nanosecond()))
}

// reportTrail is a hand-made trail shaped as app writes it (the entries completeAudit filled).
// What each line is, and what the reports must say of it, is worked out by hand in
// testdata/report/*.json: see the comments there and the figures below.
func reportTrail() []store.AuditEntry {
	sess := func(t time.Time, sid, action, outcome, reason, sup, agent, mode, trigger string) store.AuditEntry {
		return store.AuditEntry{Time: t, Tenant: "acme", Actor: sup, Action: action, Target: agent, Outcome: outcome,
			Reason: reason, Session: sid, Mode: mode, Trigger: trigger}
	}
	help := func(t time.Time, hid, action, outcome, reason, actor, agent, trigger string) store.AuditEntry {
		return store.AuditEntry{Time: t, Tenant: "acme", Actor: actor, Action: action, Target: agent, Outcome: outcome,
			Reason: reason, HelpRequest: hid, Trigger: trigger, Extra: map[string]string{"help_request": hid}}
	}
	withSup := func(e store.AuditEntry, sup string) store.AuditEntry { e.Extra["supervisor"] = sup; return e }
	withHelp := func(e store.AuditEntry, hid string) store.AuditEntry { e.HelpRequest = hid; return e }
	repeats := func(e store.AuditEntry, n int64) store.AuditEntry { e.Repeats = n; return e }
	trail := []store.AuditEntry{
		// S7 joined before the window: not counted, nor its end inside it. H8 likewise.
		sess(at(-1, "23:59:00.000"), "S7", "join", "allowed", "", "700", "744", "spy", "feature_code"),
		help(at(-1, "23:58:00.000"), "H8", "help_raise", "allowed", "", "744", "744", "api"),
		sess(at(0, "00:05:00.000"), "S7", "end", "ok", "supervisor_hangup", "700", "744", "spy", "feature_code"),
		help(at(0, "00:01:00.000"), "H8", "help_accept", "allowed", "", "700", "744", "api"),

		// S1: 700 on 744 by feature code: spy 60 s, whisper 30 s (DTMF), barge 30 s (API).
		sess(at(0, "10:00:00.000"), "S1", "join", "allowed", "", "700", "744", "spy", "feature_code"),
		sess(at(0, "10:01:00.000"), "S1", "mode_change", "allowed", "", "700", "744", "whisper", "dtmf"),
		sess(at(0, "10:01:30.000"), "S1", "mode_change", "allowed", "", "700", "744", "barge", "api"),
		sess(at(0, "10:02:00.000"), "S1", "end", "ok", "supervisor_hangup", "700", "744", "barge", "feature_code"),
		// S2: 701 on 745 by API, whisper 300 s; a refused switch (talker busy) in between.
		sess(at(0, "10:10:00.000"), "S2", "join", "allowed", "", "701", "745", "whisper", "api"),
		sess(at(0, "10:12:00.000"), "S2", "mode_change", "refused", "talker_busy", "701", "745", "barge", "api"),
		sess(at(0, "10:15:00.000"), "S2", "end", "ok", "api", "701", "745", "whisper", "api"),
		// S3: 700 by API, the phone never answered: unanswered, no time.
		sess(at(0, "10:20:00.000"), "S3", "join", "allowed", "", "700", "745", "spy", "api"),
		sess(at(0, "10:20:30.000"), "S3", "end", "ok", "no_answer", "700", "745", "spy", "api"),
		// S4: 701 by API, refused once the phone answered (the call had ended): a refusal only.
		sess(at(0, "10:30:00.000"), "S4", "join", "allowed", "", "701", "744", "spy", "api"),
		sess(at(0, "10:30:20.000"), "S4", "join", "refused", "no_active_call", "701", "744", "spy", "api"),
		// 700 mistypes a code: one entry standing for 4 refusals.
		repeats(sess(at(0, "10:40:00.000"), "S9", "join", "refused", "unknown_code", "700", "", "", "feature_code"), 3),

		// H1: 744 asks (API), 700 accepts by phone after 5 s and is joined in whisper (S5, trigger
		// phone) for 300 s; 744 closes after 180 s in progress; the sweep's late close of the
		// call's end finds it closed already (no refusal in the trail): ignored.
		help(at(0, "11:00:00.000"), "H1", "help_raise", "allowed", "", "744", "744", "api"),
		help(at(0, "11:00:05.000"), "H1", "help_accept", "allowed", "", "700", "744", "phone"),
		withHelp(sess(at(0, "11:00:05.000"), "S5", "join", "allowed", "", "700", "744", "whisper", "feature_code"), "H1"),
		help(at(0, "11:03:05.000"), "H1", "help_close", "allowed", "", "744", "744", ""),
		sess(at(0, "11:05:05.000"), "S5", "end", "ok", "call_ended", "700", "744", "whisper", "feature_code"),
		help(at(0, "11:05:05.000"), "H1", "help_close", "allowed", "call_ended", "earpiece", "744", "system"),

		// H2: 745 asks by the in-call key; an admin key accepts for 701 after 20 s; 700's accept
		// a second later loses (refused after its allowed entry); the call's end closes it after
		// 600 s in progress.
		help(at(0, "12:00:00.000"), "H2", "help_raise", "allowed", "", "745", "745", "phone"),
		withSup(help(at(0, "12:00:20.000"), "H2", "help_accept", "allowed", "", "key:crm", "745", "api"), "701"),
		help(at(0, "12:00:21.000"), "H2", "help_accept", "allowed", "", "700", "745", "api"),
		help(at(0, "12:00:21.500"), "H2", "help_accept", "refused", "help_not_open", "700", "745", "api"),
		help(at(0, "12:10:20.000"), "H2", "help_close", "allowed", "call_ended", "earpiece", "745", "system"),

		// H3: nobody accepts: escalated after 2 min, expired after 10.
		help(at(0, "13:00:00.000"), "H3", "help_raise", "allowed", "", "744", "744", "api"),
		help(at(0, "13:02:00.000"), "H3", "help_escalate", "allowed", "", "earpiece", "744", "system"),
		help(at(0, "13:10:00.000"), "H3", "help_expire", "allowed", "", "earpiece", "744", "system"),
		// H4: withdrawn after 30 s.
		help(at(0, "14:00:00.000"), "H4", "help_raise", "allowed", "", "745", "745", "api"),
		help(at(0, "14:00:30.000"), "H4", "help_cancel", "allowed", "", "745", "745", "api"),
		// H5: escalated, then 701 accepts after 180 s; still in progress at the end.
		help(at(0, "15:00:00.000"), "H5", "help_raise", "allowed", "", "744", "744", "api"),
		help(at(0, "15:02:00.000"), "H5", "help_escalate", "allowed", "", "earpiece", "744", "system"),
		help(at(0, "15:03:00.000"), "H5", "help_accept", "allowed", "", "701", "744", "api"),
		// H6: the expiry races 700's accept and loses (the sweep's refusal is no person's):
		// accepted after 600.1 s, closed by 744 600 s later.
		help(at(0, "16:00:00.000"), "H6", "help_raise", "allowed", "", "744", "744", "api"),
		help(at(0, "16:10:00.000"), "H6", "help_expire", "allowed", "", "earpiece", "744", "system"),
		help(at(0, "16:10:00.100"), "H6", "help_accept", "allowed", "", "700", "744", "api"),
		help(at(0, "16:10:00.200"), "H6", "help_expire", "refused", "help_not_open", "earpiece", "744", "system"),
		help(at(0, "16:20:00.100"), "H6", "help_close", "allowed", "", "744", "744", "api"),
		// 746 asks with no call: a refused raise of a request that never existed.
		help(at(0, "17:00:00.000"), "H10", "help_raise", "refused", "no_active_call", "746", "746", "api"),

		// Day 2. H7: nobody has answered by the end of the look-ahead.
		help(at(1, "09:00:00.000"), "H7", "help_raise", "allowed", "", "745", "745", "api"),
		// S6: 701 barges on 744 at 23:30; after the window (in the look-ahead) switches to spy,
		// and has not ended by 01:00: barge 2400 s, spy 3000 s, still active.
		sess(at(1, "23:30:00.000"), "S6", "join", "allowed", "", "701", "744", "barge", "feature_code"),
		sess(at(2, "00:10:00.000"), "S6", "mode_change", "allowed", "", "701", "744", "spy", "dtmf"),
		// After the look-ahead: not read.
		sess(at(2, "01:00:00.000"), "S6", "end", "ok", "supervisor_hangup", "701", "744", "spy", "feature_code"),
		// Joined after the window: not counted.
		sess(at(2, "00:20:00.000"), "S8", "join", "allowed", "", "700", "744", "spy", "feature_code"),
	}
	// The stream's order (its ids) is the order of writing; listed above by story.
	slices.SortStableFunc(trail, func(a, b store.AuditEntry) int { return a.Time.Compare(b.Time) })
	return trail
}

// TestReportFixtures compares reports of the fixture trail with the figures worked out by hand in
// testdata/report/ (compared as JSON values, so their layout is free; never rewritten by a test).
func TestReportFixtures(t *testing.T) {
	w := reportWindow{From: at(0, "00:00:00.000"), To: at(2, "00:00:00.000"), Until: at(2, "01:00:00.000")}
	for _, tc := range []struct {
		file    string
		groupBy string
		only    string
	}{
		{"supervisor.json", GroupBySupervisor, ""},
		{"day.json", GroupByDay, ""},
		{"agent.json", GroupByAgent, ""},
		{"own_700.json", GroupBySupervisor, "700"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			w := w
			w.GroupBy, w.Only = tc.groupBy, tc.only
			b := newReportBuilder(w)
			for _, e := range reportTrail() {
				b.Add(&e)
			}
			got, err := json.Marshal(b.Report())
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join("testdata", "report", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var want, have any
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			if err := json.Unmarshal(got, &have); err != nil {
				t.Fatal(err)
			}
			delete(want.(map[string]any), "_comment")
			if !reflect.DeepEqual(have, want) {
				pretty, _ := json.MarshalIndent(have, "", "  ")
				t.Errorf("report grouped by %s (only %q) differs from %s; got\n%s", tc.groupBy, tc.only, tc.file, pretty)
			}
		})
	}
}

func TestNearestRank(t *testing.T) {
	s := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Second
		}
		return out
	}
	for _, tc := range []struct {
		in          []time.Duration
		median, p90 float64
	}{
		{s(7), 7, 7},
		{s(1, 2), 1, 2},
		{s(3, 1, 2), 2, 3},
		{s(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 5, 9},
		{s(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 6, 10},
	} {
		got := durationStats(tc.in)
		if got.MedianSeconds != tc.median || got.P90Seconds != tc.p90 || got.Count != int64(len(tc.in)) {
			t.Errorf("durationStats(%v) = %+v, want median %v p90 %v", tc.in, got, tc.median, tc.p90)
		}
	}
	if got := durationStats(nil); got != (DurationStats{}) {
		t.Errorf("durationStats(nil) = %+v", got)
	}
}
