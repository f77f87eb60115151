// Package chaos is earpiece's fault-injection suite: on the real test Asterisk and a real Redis
// (internal/e2etest rigs), each scenario of a table places real SIP calls, supervises one,
// injects a fault at a chosen point (Redis stopped or frozen, mid-session, during a teardown or
// a join; the ARI socket cut; Asterisk restarted) and recovers from it; after every run the
// same invariants are checked: nothing earpiece made is left (snoop, bridge, claim, live
// record), every session's join and end are audited exactly once and the chain verifies, every
// supervision.started and supervision.ended notification is sent exactly once, the journal is
// empty, and the supervisor's audio went on through the fault where the design says it does.
//
// `make test` runs the bounded slice (the scenarios marked InMakeTest, once each, ~30 s);
// `make chaos` runs every scenario EARPIECE_CHAOS_RUNS times (3). The summary line gives the
// runs, the faults injected and the violations found.
//
// New faults are new rows of the table (scenarios_test.go): a Scenario says what it needs (a
// private Asterisk for restarts) and drives one run through the Harness, which carries the rig,
// the app, the fault injectors and the invariant checks.
package chaos
