// Package asterisktest runs a real Asterisk for tests.
//
// Asterisk comes from Debian's unstable suite (22.10.1), installed by scripts/asterisk-root.sh into
// a minimal root kept in a cache directory outside the repository; each Instance runs
// `asterisk -f` in that root (chroot) with the project's asterisk-conf/ plus a test overlay that
// puts HTTP/ARI, PJSIP/UDP and the RTP range on free loopback ports, so two instances (or a
// developer's own Asterisk) never collide, and drops the auth= lines of pjsip.conf (the test phones
// carry no passwords; internal/stacktest runs the sample phones with theirs).
//
// Set EARPIECE_TEST_ARI_URL (with EARPIECE_TEST_ARI_USER, EARPIECE_TEST_ARI_PASSWORD and, for SIP
// phones, EARPIECE_TEST_SIP_ADDR) to run the tests against another Asterisk instead; that
// Asterisk must carry asterisk-conf/ and cannot be restarted or driven through its CLI.
package asterisktest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/earpiece/earpiece/internal/freeport"
)

// MediaNice is the niceness of the test Asterisk and of the test phones' processes (see
// RaisePriority): above ordinary work, below nothing else.
const MediaNice = -10

// RaisePriority gives every thread of the calling process the niceness MediaNice (threads made
// later inherit it), so the test phones' media keeps time on a busy machine. It needs root
// (CAP_SYS_NICE); without it the process keeps its priority and the error says why.
func RaisePriority() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("raising priority: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, MediaNice); err != nil {
			return fmt.Errorf("raising priority of thread %d to nice %d: %w", tid, MediaNice, err)
		}
	}
	return nil
}

// Environment variables that point the tests at another Asterisk.
const (
	EnvARIURL      = "EARPIECE_TEST_ARI_URL"
	EnvARIUser     = "EARPIECE_TEST_ARI_USER"
	EnvARIPassword = "EARPIECE_TEST_ARI_PASSWORD"
	EnvSIPAddr     = "EARPIECE_TEST_SIP_ADDR"
)

// Instance is a running Asterisk.
type Instance struct {
	ARIURL   string // e.g. http://127.0.0.1:41234/ari
	User     string
	Password string
	SIPHost  string // PJSIP UDP transport, for the test phones
	SIPPort  int
	// External is true when the instance was named by EARPIECE_TEST_ARI_URL: it is not ours to
	// restart or to drive through the CLI.
	External bool

	root    string // the chroot
	dir     string // instance directory, inside root
	hostDir string // the same directory seen from the host
	rtpBase int
	ports   *freeport.Block // HTTP, SIP and the RTP range; held until the directory is removed

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// SIPAddr is the PJSIP transport as host:port.
func (i *Instance) SIPAddr() string {
	return net.JoinHostPort(i.SIPHost, fmt.Sprint(i.SIPPort))
}

// LogPath is the file Asterisk's console and messages go to ("" for an external Asterisk).
func (i *Instance) LogPath() string {
	if i.External {
		return ""
	}
	return filepath.Join(i.hostDir, "log", "messages.log")
}

// EtcDir is the directory of this Asterisk's configuration files (asterisk-conf/ plus the test
// overlay), as the host sees it: a test may rewrite a file in it and reload the module that reads
// it. Only an Asterisk of the test's own (Start) should be changed so. "" for an external
// Asterisk.
func (i *Instance) EtcDir() string {
	if i.External {
		return ""
	}
	return filepath.Join(i.hostDir, "etc")
}

var (
	sharedOnce sync.Once
	shared     *Instance
	sharedErr  error
)

// Shared returns the test binary's Asterisk, starting it on first use. Call Main from TestMain so
// it is stopped when the tests end.
func Shared(t testing.TB) *Instance {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = start() })
	if sharedErr != nil {
		t.Fatalf("asterisktest: %v", sharedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("asterisk log (%s), last lines:\n%s", shared.LogPath(), shared.LogTail(40))
		}
	})
	return shared
}

// Main runs the tests and stops the shared Asterisk afterwards.
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.stop()
		if code == 0 && os.Getenv("EARPIECE_TEST_KEEP") == "" {
			shared.removeDir()
		}
	}
	return code
}

// Start starts a private Asterisk, stopped when the test ends. Use it for tests that restart
// Asterisk or disturb it otherwise; Shared for the rest.
func Start(t testing.TB) *Instance {
	t.Helper()
	if os.Getenv(EnvARIURL) != "" {
		t.Skipf("asterisktest: %s is set; this test needs an Asterisk of its own", EnvARIURL)
	}
	i, err := start()
	if err != nil {
		t.Fatalf("asterisktest: %v", err)
	}
	t.Cleanup(func() {
		i.stop()
		if t.Failed() {
			t.Logf("asterisk log (%s), last lines:\n%s", i.LogPath(), i.LogTail(60))
			return
		}
		i.removeDir()
	})
	return i
}

// Launch starts an Asterisk outside of a test (for example for trying earpiece without Docker);
// Close stops it and removes its directory.
func Launch() (*Instance, error) { return start() }

// Close stops a launched Asterisk and removes its files.
func (i *Instance) Close() {
	i.stop()
	i.removeDir()
}

func start() (*Instance, error) {
	if u := os.Getenv(EnvARIURL); u != "" {
		i := &Instance{ARIURL: strings.TrimSuffix(u, "/"), User: os.Getenv(EnvARIUser), Password: os.Getenv(EnvARIPassword), External: true}
		if a := os.Getenv(EnvSIPAddr); a != "" {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				return nil, fmt.Errorf("%s=%q: %w", EnvSIPAddr, a, err)
			}
			i.SIPHost = host
			fmt.Sscan(port, &i.SIPPort)
		}
		return i, i.waitARI(10 * time.Second)
	}
	root, err := provisionRoot()
	if err != nil {
		return nil, err
	}
	i, err := newInstance(root)
	if err != nil {
		return nil, err
	}
	if err := i.launch(); err != nil {
		i.stop()
		return nil, fmt.Errorf("%w\nasterisk log:\n%s", err, i.LogTail(40))
	}
	return i, nil
}

// moduleRoot finds the repository root (the directory holding go.mod) from the working directory,
// which `go test` sets to the package's directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// RESTAPIDir is where Debian's asterisk package installs Asterisk's own description of ARI, relative
// to the root: Swagger 1.1 JSON, resources.json and one file per resource, and events.json, which
// defines every event type and its fields (ari/internal/gen generates ari/events_gen.go from it).
const RESTAPIDir = "usr/share/asterisk/rest-api"

// Root returns the directory of the Asterisk root the tests run in (a chroot holding Debian sid's
// Asterisk 22), building it first when it is not there yet: scripts/asterisk-root.sh builds it
// once (as root, in about a minute) into a cache directory outside the repository, and every later
// call returns that directory at once. It is the root Shared and Start run Asterisk in; Root
// provisions it even when EARPIECE_TEST_ARI_URL points the tests at another Asterisk.
func Root() (string, error) { return provisionRoot() }

// provisionRoot runs scripts/asterisk-root.sh, which builds the root once and prints its path.
func provisionRoot() (string, error) {
	mod, err := moduleRoot()
	if err != nil {
		return "", err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(mod, "scripts", "asterisk-root.sh"))
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("provisioning the Asterisk root (scripts/asterisk-root.sh): %w\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

func newInstance(root string) (*Instance, error) {
	mod, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		return nil, err
	}
	hostDir, err := os.MkdirTemp(filepath.Join(root, "tmp"), "earpiece-ast-")
	if err != nil {
		return nil, err
	}
	i := &Instance{
		User:     "earpiece-test",
		Password: randomHex(12),
		SIPHost:  "127.0.0.1",
		root:     root,
		hostDir:  hostDir,
		dir:      "/" + strings.TrimPrefix(strings.TrimPrefix(hostDir, root), "/"),
	}
	// Ports from internal/freeport: reserved across test binaries and below the ephemeral range,
	// so nothing can bind them between now and Asterisk's start (a listen-then-close probe races).
	if i.ports, err = freeport.Reserve(); err != nil {
		return nil, err
	}
	httpPort := i.ports.Port(0)
	i.SIPPort = i.ports.Port(1)
	i.rtpBase = i.ports.Port(2) // even, as RTP wants; the range takes 200 ports
	i.ARIURL = fmt.Sprintf("http://127.0.0.1:%d/ari", httpPort)
	// Asterisk does not create spool/recording itself: without it every recording fails (500).
	for _, d := range []string{"etc", "run", "log", "spool", "spool/recording", "lib", "cache"} {
		if err := os.MkdirAll(filepath.Join(hostDir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// The project's configuration first, then the overlay on top of it.
	conf := filepath.Join(mod, "asterisk-conf")
	entries, err := os.ReadDir(conf)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", conf, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(conf, e.Name()))
		if err != nil {
			return nil, err
		}
		if e.Name() == "pjsip.conf" {
			b = withoutAuth(b)
		}
		if err := os.WriteFile(filepath.Join(hostDir, "etc", e.Name()), b, 0o644); err != nil {
			return nil, err
		}
	}
	moddir, err := moduleDir(root)
	if err != nil {
		return nil, err
	}
	overlay := map[string]string{
		"asterisk.conf": fmt.Sprintf(`[directories]
astetcdir => %[1]s/etc
astmoddir => %[2]s
astvarlibdir => /var/lib/asterisk
astdbdir => %[1]s/lib
astkeydir => /var/lib/asterisk
astdatadir => /usr/share/asterisk
astagidir => /usr/share/asterisk/agi-bin
astspooldir => %[1]s/spool
astrundir => %[1]s/run
astlogdir => %[1]s/log
astsbindir => /usr/sbin
astcachedir => %[1]s/cache

[options]
nocolor = yes
; Test phones and tones: keep the media path in Asterisk predictable.
transmit_silence = no
`, i.dir, moddir),
		"http.conf": fmt.Sprintf("[general]\nenabled=yes\nbindaddr=127.0.0.1\nbindport=%d\n", httpPort),
		"ari.conf": fmt.Sprintf("[general]\nenabled=yes\npretty=no\n\n[%s]\ntype=user\nread_only=no\npassword_format=plain\npassword=%s\n",
			i.User, i.Password),
		"rtp.conf":             fmt.Sprintf("[general]\nrtpstart=%d\nrtpend=%d\nstrictrtp=no\n", i.rtpBase, i.rtpBase+198),
		"pjsip_transport.conf": fmt.Sprintf("[transport-udp]\ntype=transport\nprotocol=udp\nbind=127.0.0.1:%d\n", i.SIPPort),
		"logger.conf":          "[general]\ndateformat=%F %T.%3q\n\n[logfiles]\nmessages.log => notice,warning,error,verbose(3)\n",
	}
	for name, body := range overlay {
		if err := os.WriteFile(filepath.Join(hostDir, "etc", name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// withoutAuth drops the auth= lines of pjsip.conf: the sample phones need digest passwords (the
// Docker image writes them from SIP_PASSWORDS), the test phones carry none, and this Asterisk
// listens on loopback only.
func withoutAuth(conf []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(conf, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("auth=")) {
			out = append(out, line...)
		}
	}
	return out
}

// moduleDir finds Asterisk's module directory in the root (multiarch path).
func moduleDir(root string) (string, error) {
	m, _ := filepath.Glob(filepath.Join(root, "usr/lib/*/asterisk/modules"))
	if len(m) == 0 {
		return "", fmt.Errorf("no Asterisk module directory in %s", root)
	}
	return strings.TrimPrefix(m[0], root), nil
}

func (i *Instance) launch() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(i.hostDir, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	// Media is real time: Asterisk runs at a higher priority than ordinary work (nice -10, as a
	// production PBX would be given), so a machine busy with other jobs delays the audio the
	// by-ear tests judge no more than the PBX would be delayed in production. Without root, nice
	// says it cannot and runs Asterisk at normal priority.
	cmd := exec.Command("nice", "-n", strconv.Itoa(MediaNice), "chroot", i.root, "/usr/sbin/asterisk", "-f", "-n", "-C", i.dir+"/etc/asterisk.conf")
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group so stop signals only what we started; die with the test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting asterisk in %s: %w", i.root, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	i.cmd, i.done = cmd, done
	select {
	case <-done:
		return errors.New("asterisk exited during start-up")
	default:
	}
	return i.waitARI(20 * time.Second)
}

// waitARI polls GET /asterisk/info until ARI answers 200.
func (i *Instance) waitARI(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	var last error
	for time.Now().Before(deadline) {
		if i.done != nil {
			select {
			case <-i.done:
				return errors.New("asterisk exited before ARI answered")
			default:
			}
		}
		req, _ := http.NewRequest(http.MethodGet, i.ARIURL+"/asterisk/info", nil)
		req.SetBasicAuth(i.User, i.Password)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("ARI at %s did not answer within %s: %v", i.ARIURL, limit, last)
}

// CLI runs an Asterisk CLI command (asterisk -rx) and returns its output.
func (i *Instance) CLI(ctx context.Context, command string) (string, error) {
	if i.External {
		return "", errors.New("asterisktest: no CLI for an external Asterisk")
	}
	cmd := exec.CommandContext(ctx, "chroot", i.root, "/usr/sbin/asterisk", "-C", i.dir+"/etc/asterisk.conf", "-rx", command)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("asterisk -rx %q: %w: %s", command, err, out)
	}
	return string(out), nil
}

// Restart stops Asterisk and starts it again on the same ports.
func (i *Instance) Restart(t testing.TB) {
	t.Helper()
	if i.External {
		t.Skip("asterisktest: cannot restart an external Asterisk")
	}
	i.stop()
	if err := i.launch(); err != nil {
		t.Fatalf("asterisktest: restart: %v\n%s", err, i.LogTail(40))
	}
}

// Stop stops Asterisk (the instance can be started again with Restart).
func (i *Instance) Stop() { i.stop() }

func (i *Instance) stop() {
	i.mu.Lock()
	cmd, done := i.cmd, i.done
	i.cmd = nil
	i.mu.Unlock()
	if cmd == nil {
		return
	}
	// SIGTERM asks Asterisk for a quick shutdown; SIGKILL the group if it does not go.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

func (i *Instance) removeDir() {
	if !i.External && i.hostDir != "" {
		os.RemoveAll(i.hostDir)
	}
	if i.ports != nil {
		i.ports.Release()
	}
}

// LogTail returns the last n lines of Asterisk's log.
func (i *Instance) LogTail(n int) string {
	if i.External {
		return "(external Asterisk: no log)"
	}
	var b strings.Builder
	for _, name := range []string{"console.log", "messages.log"} {
		data, err := os.ReadFile(filepath.Join(i.hostDir, "log", name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", name, strings.Join(lines, "\n"))
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
