package scale

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ClockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (proc(5)). The kernel
// reports those fields in USER_HZ whatever its own HZ, and USER_HZ is 100 on every Linux
// architecture Go supports (sysconf(_SC_CLK_TCK) would need cgo to ask).
const ClockTicks = 100

// ProcStat is what the scale run reads from /proc/<pid>/stat.
type ProcStat struct {
	Comm       string // the command name, without its parentheses
	State      byte
	UTime      uint64 // clock ticks in user mode, all threads of the process
	STime      uint64 // clock ticks in kernel mode, all threads of the process
	NumThreads int64
}

// CPU is UTime+STime as a duration.
func (s ProcStat) CPU() time.Duration {
	return time.Duration(s.UTime+s.STime) * time.Second / ClockTicks
}

// ErrStatFormat is the error of a /proc/<pid>/stat line ParseStat cannot read.
var ErrStatFormat = errors.New("malformed /proc/<pid>/stat")

// ParseStat parses the single line of /proc/<pid>/stat (proc(5)). The command name is the text
// between the first '(' and the last ')': it may itself hold spaces and parentheses (a thread
// may name itself anything), so the fields are counted from the last ')'.
func ParseStat(b []byte) (ProcStat, error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return ProcStat{}, fmt.Errorf("%w: no (comm)", ErrStatFormat)
	}
	if _, err := strconv.ParseUint(string(bytes.TrimSpace(b[:open])), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: pid %q", ErrStatFormat, bytes.TrimSpace(b[:open]))
	}
	// After the ')': state is field 3 of the line, utime 14, stime 15, num_threads 20.
	f := bytes.Fields(b[closing+1:])
	const (
		iState   = 0
		iUTime   = 14 - 3
		iSTime   = 15 - 3
		iThreads = 20 - 3
	)
	if len(f) <= iThreads {
		return ProcStat{}, fmt.Errorf("%w: %d fields after the command name, want at least %d", ErrStatFormat, len(f), iThreads+1)
	}
	if len(f[iState]) != 1 {
		return ProcStat{}, fmt.Errorf("%w: state %q", ErrStatFormat, f[iState])
	}
	s := ProcStat{Comm: string(b[open+1 : closing]), State: f[iState][0]}
	var err error
	if s.UTime, err = strconv.ParseUint(string(f[iUTime]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: utime: %v", ErrStatFormat, err)
	}
	if s.STime, err = strconv.ParseUint(string(f[iSTime]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: stime: %v", ErrStatFormat, err)
	}
	if s.NumThreads, err = strconv.ParseInt(string(f[iThreads]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("%w: num_threads: %v", ErrStatFormat, err)
	}
	return s, nil
}

// ParseStatusRSS returns VmRSS of /proc/<pid>/status in KiB (the kernel writes "VmRSS:  1234 kB").
// A process without one (a zombie, a kernel thread) is an error.
func ParseStatusRSS(b []byte) (int64, error) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("VmRSS line %q", line)
		}
		return strconv.ParseInt(string(f[0]), 10, 64)
	}
	return 0, errors.New("no VmRSS in /proc/<pid>/status")
}

// Sample is one reading of a process: its CPU time so far and its resident memory.
type Sample struct {
	At     time.Time
	CPU    time.Duration
	RSSKiB int64
}

// ReadSample reads /proc/<pid>/stat and /proc/<pid>/status.
func ReadSample(pid int) (Sample, error) {
	at := time.Now()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Sample{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Sample{}, err
	}
	rss, err := ParseStatusRSS(b)
	if err != nil {
		return Sample{}, fmt.Errorf("pid %d: %w", pid, err)
	}
	return Sample{At: at, CPU: st.CPU(), RSSKiB: rss}, nil
}

// Window is a process's two readings at the ends of a measuring window.
type Window struct{ From, To Sample }

// CPUShare is the CPU the process used in the window as a share of one core (1 = a whole core).
func (w Window) CPUShare() float64 {
	d := w.To.At.Sub(w.From.At)
	if d <= 0 {
		return 0
	}
	return float64(w.To.CPU-w.From.CPU) / float64(d)
}

// SystemCPU is the first line of /proc/stat: every CPU's time since boot, in clock ticks.
type SystemCPU struct {
	Busy, Total uint64 // Total less idle and iowait; all of it
}

// ParseSystemCPU reads the aggregate "cpu" line of /proc/stat (proc(5): user nice system idle
// iowait irq softirq steal guest guest_nice; guest time is already counted in user and nice).
func ParseSystemCPU(b []byte) (SystemCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return SystemCPU{}, fmt.Errorf("/proc/stat: first line %q is not the cpu line", line)
	}
	var s SystemCPU
	for i, v := range f[1:min(len(f), 9)] { // up to steal
		n, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return SystemCPU{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
		}
		s.Total += n
		if i != 3 && i != 4 { // idle, iowait
			s.Busy += n
		}
	}
	return s, nil
}

// ReadSystemCPU reads /proc/stat.
func ReadSystemCPU() (SystemCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return SystemCPU{}, err
	}
	return ParseSystemCPU(b)
}

// BusyShare is how busy the machine was between a and b: 1 = every CPU all the time.
func BusyShare(a, b SystemCPU) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}
