package scale

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	// Field 2 may hold spaces and parentheses: counted from the last ')'.
	line := "4242 (earp (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 75 0 0 20 0 12 0 123456 1234567 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	s, err := ParseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if s.Comm != "earp (x) y" || s.State != 'S' || s.UTime != 250 || s.STime != 75 || s.NumThreads != 12 {
		t.Fatalf("%+v", s)
	}
	if s.CPU() != 3250*time.Millisecond {
		t.Errorf("CPU = %v, want 3.25s", s.CPU())
	}
	for _, bad := range []string{"", "1 (x", "x (y) S 1", "1 (y) S 1 2 3", "1 (y) SS 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18",
		"1 (y) S 1 2 3 4 5 6 7 8 9 10 -1 0 0 0 0 0 12 0"} {
		if _, err := ParseStat([]byte(bad)); !errors.Is(err, ErrStatFormat) {
			t.Errorf("ParseStat(%q) = %v, want ErrStatFormat", bad, err)
		}
	}
}

// TestReadSampleSelf reads this process, which uses some CPU and memory.
func TestReadSampleSelf(t *testing.T) {
	s, err := ReadSample(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB <= 0 || s.CPU < 0 {
		t.Fatalf("%+v", s)
	}
}

func TestParseSystemCPU(t *testing.T) {
	a, err := ParseSystemCPU([]byte("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"))
	if err != nil || a.Busy != 150 || a.Total != 1000 {
		t.Fatalf("%+v %v", a, err)
	}
	b := SystemCPU{Busy: 250, Total: 1200}
	if got := BusyShare(a, b); got != 0.5 {
		t.Errorf("BusyShare = %v, want 0.5", got)
	}
	if _, err := ParseSystemCPU([]byte("intr 1 2 3")); err == nil {
		t.Error("no cpu line: no error")
	}
	if _, err := ReadSystemCPU(); err != nil {
		t.Error(err)
	}
}

func TestParseStatusRSS(t *testing.T) {
	st := "Name:\tearpiece\nVmPeak:\t  99 kB\nVmRSS:\t   20480 kB\nThreads:\t9\n"
	if n, err := ParseStatusRSS([]byte(st)); err != nil || n != 20480 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := ParseStatusRSS([]byte("Name:\tz\nState:\tZ (zombie)\n")); err == nil {
		t.Error("no VmRSS: no error")
	}
}

func TestCPUShare(t *testing.T) {
	t0 := time.Unix(100, 0)
	w := Window{From: Sample{At: t0, CPU: time.Second}, To: Sample{At: t0.Add(10 * time.Second), CPU: 3 * time.Second}}
	if got := w.CPUShare(); got != 0.2 {
		t.Errorf("CPUShare = %v, want 0.2", got)
	}
	if (Window{}).CPUShare() != 0 {
		t.Error("empty window")
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 20; i++ {
		ds = append(ds, time.Duration(21-i)*time.Millisecond) // unsorted on purpose
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 10 * time.Millisecond}, {95, 19 * time.Millisecond}, {100, 20 * time.Millisecond}, {1, time.Millisecond}} {
		if got := Percentile(ds, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if ds[0] != 20*time.Millisecond {
		t.Error("Percentile sorted its argument")
	}
	if Percentile(nil, 50) != 0 || Percentile([]time.Duration{7}, 95) != 7 {
		t.Error("edge cases")
	}
}

func TestLoss(t *testing.T) {
	var fs []RTPFrame
	// Stream 1 wraps around 65535 and misses 2 packets; stream 2 has a duplicate and a swap.
	for _, s := range []uint16{65530, 65531, 65533, 65534, 65535, 0, 2, 3} {
		fs = append(fs, RTPFrame{SSRC: 1, Seq: s})
	}
	for _, s := range []uint16{10, 12, 11, 12, 13} {
		fs = append(fs, RTPFrame{SSRC: 2, Seq: s})
	}
	exp, got := Loss(fs)
	if exp != 10+4 || got != 8+4 {
		t.Errorf("Loss = %d expected, %d received; want 14, 12", exp, got)
	}
}

func TestParseInfo(t *testing.T) {
	info := ParseInfo("# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\n\r\n")
	if n, ok := InfoInt(info, "used_memory"); !ok || n != 1048576 {
		t.Errorf("used_memory = %d %v", n, ok)
	}
	if _, ok := InfoInt(info, "used_memory_human"); ok {
		t.Error("a non-integer field parsed as one")
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown([]Row{{N: 10, Note: "stopped: lost frames"}}, 10*time.Second)
	if !strings.Contains(md, "| 10 |") || !strings.Contains(md, "N=10: stopped") {
		t.Errorf("table:\n%s", md)
	}
}

// FuzzParseStat: no input panics, and whatever parses reads back the fields it was made of.
func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 9 10 11 12\n"))
	f.Add([]byte("4242 (a) b) c) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19"))
	f.Add([]byte("7 () Z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err != nil {
			return
		}
		if !strings.Contains(string(b), "("+s.Comm+")") {
			t.Errorf("comm %q is not in %q", s.Comm, b)
		}
		if s.CPU() < 0 && s.UTime < 1<<32 && s.STime < 1<<32 {
			t.Errorf("negative CPU %v from %d+%d", s.CPU(), s.UTime, s.STime)
		}
	})
}
