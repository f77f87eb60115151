// Package scale measures what a supervised call costs at 10, 100 and more concurrent calls, on
// the real test Asterisk with real media: N customers call N agents, N supervisors join in spy
// mode through earpiece (running as its own process, so its CPU and memory are its own), then the
// same N through Asterisk's native ChanSpy for comparison.
//
// The run itself is TestScale (make scale; EARPIECE_SCALE=1, skipped otherwise), which writes a
// table to artifacts/scale/. This file's package holds only the pure parts it needs, with fast
// unit tests: /proc parsing (ParseStat, ParseStatusRSS), Redis INFO parsing, percentiles, RTP loss
// counting and the table.
package scale
