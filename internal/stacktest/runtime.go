package stacktest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// capNames are the Linux capabilities by number.
var capNames = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// dockerDefaultCaps is the set Docker gives a container before cap_drop and cap_add.
var dockerDefaultCaps = []string{
	"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
	"SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
}

// Capabilities returns the capability names a service's processes get, as Docker computes
// them: the default set (none after cap_drop ALL), less cap_drop, plus cap_add.
func (s *Service) Capabilities() ([]string, error) {
	norm := func(c string) (string, error) {
		c = strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		if c != "ALL" && !slices.Contains(capNames, c) {
			return "", fmt.Errorf("service %s: unknown capability %s", s.Name, c)
		}
		return c, nil
	}
	set := map[string]bool{}
	for _, c := range dockerDefaultCaps {
		set[c] = true
	}
	for _, c := range s.CapDrop {
		c, err := norm(c)
		if err != nil {
			return nil, err
		}
		if c == "ALL" {
			clear(set)
		}
		delete(set, c)
	}
	for _, c := range s.CapAdd {
		c, err := norm(c)
		if err != nil {
			return nil, err
		}
		if c == "ALL" {
			for _, n := range capNames {
				set[n] = true
			}
		}
		set[c] = c != "ALL"
	}
	var out []string
	for _, n := range capNames {
		if set[n] {
			out = append(out, n)
		}
	}
	return out, nil
}

// CapMask is the kernel's bit mask of capability names (as /proc/PID/status shows it).
func CapMask(names []string) uint64 {
	var m uint64
	for _, n := range names {
		if i := slices.Index(capNames, n); i >= 0 {
			m |= 1 << i
		}
	}
	return m
}

// Runtime starts containers in this process's mount and network namespaces (the test's private
// ones: it mounts without cleaning up).
type Runtime struct {
	Dir   string   // containers' layers, volumes and logs
	Hosts []string // names resolving to 127.0.0.1 in every container (compose's service names)
}

// Container is a running service.
type Container struct {
	Name     string
	Hostname string // its host name, as Docker's a short container id (also $HOSTNAME)
	Root     string // its root file system as seen from here; "" when it runs on this machine's root
	Log      string // its output
	UID      int

	svc    *Service
	img    *Image
	env    []string
	prefix []string // capsh arguments that put a process in the container
	dir    string   // working directory (containers on this machine's root)
	cmd    *exec.Cmd
	done   chan struct{}

	mu      sync.Mutex
	waitErr error
}

// Start starts svc's container from img.
func (r *Runtime) Start(ctx context.Context, svc *Service, img *Image) (*Container, error) {
	dir := filepath.Join(r.Dir, svc.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	id := make([]byte, 6)
	rand.Read(id)
	c := &Container{Name: svc.Name, Hostname: hex.EncodeToString(id), svc: svc, img: img, Log: filepath.Join(dir, "output.log"), done: make(chan struct{})}
	caps, err := svc.Capabilities()
	if err != nil {
		return nil, err
	}
	if err := r.makeRoot(ctx, c, dir); err != nil {
		return nil, fmt.Errorf("service %s: root file system: %w", svc.Name, err)
	}
	user := svc.User
	if user == "" {
		user = img.User
	}
	uid, gid, home, err := c.resolveUser(user)
	if err != nil {
		return nil, fmt.Errorf("service %s: user %q: %w", svc.Name, user, err)
	}
	c.UID = uid
	if img.Host {
		if err := r.hostVolumes(c, uid, gid); err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Name, err)
		}
	}
	c.env = containerEnv(img.Env, svc.Environment, home, c.Hostname)

	c.prefix = nil
	if c.Root != "" {
		c.prefix = append(c.prefix, "--chroot="+c.Root)
	}
	var drop []string
	for i, n := range capNames {
		if !slices.Contains(caps, n) {
			drop = append(drop, strconv.Itoa(i))
		}
	}
	if len(drop) > 0 {
		c.prefix = append(c.prefix, "--drop="+strings.Join(drop, ","))
	}
	c.prefix = append(c.prefix, "--inh=", "--noamb")
	if svc.NoNewPrivileges() {
		c.prefix = append(c.prefix, "--no-new-privs")
	}
	if uid != 0 || gid != 0 {
		c.prefix = append(c.prefix, "--gid="+strconv.Itoa(gid), "--groups="+strconv.Itoa(gid), "--uid="+strconv.Itoa(uid))
	}

	entrypoint, command := img.Entrypoint, img.Cmd
	if svc.Entrypoint != nil {
		entrypoint, command = svc.Entrypoint, nil
	}
	if svc.Command != nil {
		command = svc.Command
	}
	argv := append(append([]string(nil), entrypoint...), command...)
	if len(argv) == 0 {
		return nil, fmt.Errorf("service %s: no entrypoint or command", svc.Name)
	}
	logf, err := os.Create(c.Log)
	if err != nil {
		return nil, err
	}
	cmd, err := c.command(argv)
	if err != nil {
		logf.Close()
		return nil, fmt.Errorf("service %s: %w", svc.Name, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("service %s: starting %q: %w", svc.Name, argv, err)
	}
	c.cmd = cmd
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.mu.Lock()
		c.waitErr = err
		c.mu.Unlock()
		close(c.done)
	}()
	return c, nil
}

// command makes the command that runs argv in the container: its host name (a UTS namespace of
// its own), root, capabilities, user and environment.
func (c *Container) command(argv []string) (*exec.Cmd, error) {
	bin, err := c.lookPath(argv[0])
	if err != nil {
		return nil, err
	}
	args := []string{"--uts", "--", "/bin/sh", "-c", `hostname "$0" && exec "$@"`, c.Hostname, "capsh"}
	args = append(append(args, c.prefix...), "--shell="+bin, "--")
	args = append(args, argv[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = c.env
	cmd.Dir = c.dir
	// Its own process group, so that stopping it reaches only what it started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd, nil
}

// lookPath resolves a command name the way the container's runtime does: through PATH of its
// environment, in its root file system.
func (c *Container) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	pathVar := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, d := range filepath.SplitList(pathVar) {
		p := path.Join(d, name)
		if st, err := os.Stat(filepath.Join(c.Root, p)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found in the container's PATH", name)
}

// Exec runs argv in the running container the way `docker exec` does (its root, user,
// capabilities and environment) and returns its output.
func (c *Container) Exec(ctx context.Context, argv []string) ([]byte, error) {
	cmd, err := c.command(argv)
	if err != nil {
		return nil, err
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		err = ctx.Err()
	}
	return []byte(out.String()), err
}

// Pid is the process id of the container's main process (what the entrypoint exec'd into).
func (c *Container) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the container's main process has exited.
func (c *Container) Done() <-chan struct{} { return c.done }

// ExitErr is the main process's exit (nil: status 0); valid after Done.
func (c *Container) ExitErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitErr
}

// WaitHealthy runs the service's health check (compose's, else the image's) until it passes,
// more often than compose's interval but within the time compose allows before calling the
// service unhealthy (start_period + retries * interval). It fails at once if the container
// exits.
func (c *Container) WaitHealthy(ctx context.Context) error {
	test, limit, timeout := c.img.Healthcheck, 60*time.Second, 30*time.Second
	if hc := c.svc.Healthcheck; hc != nil {
		test = hc.Test
		start, interval := durationOr(hc.StartPeriod, 0), durationOr(hc.Interval, 30*time.Second)
		retries := hc.Retries
		if retries == 0 {
			retries = 3
		}
		limit = start + time.Duration(retries)*interval
		timeout = durationOr(hc.Timeout, 30*time.Second)
	} else if test != nil {
		test = append([]string{"CMD"}, test...)
	}
	if len(test) == 0 || test[0] == "NONE" {
		return fmt.Errorf("service %s has no health check", c.Name)
	}
	var argv []string
	switch test[0] {
	case "CMD":
		argv = test[1:]
	case "CMD-SHELL":
		argv = []string{"/bin/sh", "-c", strings.Join(test[1:], " ")}
	default:
		return fmt.Errorf("service %s: health check %q", c.Name, test)
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last string
	for {
		actx, acancel := context.WithTimeout(ctx, timeout)
		out, err := c.Exec(actx, argv)
		acancel()
		if err == nil {
			return nil
		}
		last = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(out)))
		select {
		case <-c.done:
			return fmt.Errorf("service %s exited (%v) before it was healthy; last check: %s", c.Name, c.ExitErr(), last)
		case <-ctx.Done():
			return fmt.Errorf("service %s not healthy within %s; last check: %s", c.Name, limit, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM, as `docker compose stop` does, and SIGKILL to the container's process
// group after grace. It returns the main process's exit and whether it needed SIGKILL.
func (c *Container) Stop(grace time.Duration) (exit error, killed bool) {
	if c.cmd == nil {
		return nil, false
	}
	select {
	case <-c.done:
		return c.ExitErr(), false
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		killed = true
		// SIGQUIT first: a Go program prints every goroutine's stack (in the container's log)
		// before it exits, which says what held the stop up.
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.done:
			return c.ExitErr(), killed
		case <-time.After(2 * time.Second):
		}
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
	return c.ExitErr(), killed
}

// Kill stops the container's whole process group at once.
func (c *Container) Kill() {
	if c.cmd == nil {
		return
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// makeRoot builds and mounts the container's root file system.
func (r *Runtime) makeRoot(ctx context.Context, c *Container, dir string) error {
	img, svc := c.img, c.svc
	if img.Host {
		if svc.ReadOnly || len(svc.Tmpfs) > 0 {
			return errors.New("read_only and tmpfs are not emulated for a service run on this machine's root")
		}
		return nil
	}
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	c.Root = root
	if img.Lower != nil {
		for _, d := range []string{"upper", "work"} {
			if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
				return err
			}
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(img.Lower, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
		if err := run(ctx, "mount", "-t", "overlay", "overlay", "-o", opts, root); err != nil {
			return err
		}
	} else {
		for _, d := range []string{"etc", "tmp", "proc", "dev", "home/nonroot"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				return err
			}
		}
		if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
			return err
		}
		if err := os.Chown(filepath.Join(root, "home/nonroot"), 65532, 65532); err != nil {
			return err
		}
		// What distroless/static carries besides the binaries copied in.
		files := map[string]string{
			"etc/passwd":        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
			"etc/group":         "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n",
			"etc/nsswitch.conf": "hosts: files dns\n",
		}
		for p, body := range files {
			if err := os.WriteFile(filepath.Join(root, p), []byte(body), 0o644); err != nil {
				return err
			}
		}
		for dst, src := range img.Files {
			info, err := os.Stat(src)
			if err != nil {
				return err
			}
			if err := copyFile(src, filepath.Join(root, dst), info.Mode().Perm()); err != nil {
				return err
			}
		}
	}
	// Mount points first: a read-only root cannot get them later.
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1\tlocalhost "+strings.Join(r.Hosts, " ")+"\n::1\tlocalhost\n"), 0o644); err != nil {
		return err
	}
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# stacktest: no name server (the network namespace has only loopback)\n"), 0o644); err != nil {
		return err
	}
	hostname := filepath.Join(dir, "hostname")
	if err := os.WriteFile(hostname, []byte(c.Hostname+"\n"), 0o644); err != nil {
		return err
	}
	binds := [][2]string{{hosts, "/etc/hosts"}, {resolv, "/etc/resolv.conf"}, {hostname, "/etc/hostname"}}
	for _, b := range binds {
		if err := mountPoint(root, b[1], false); err != nil {
			return err
		}
	}
	for _, v := range svc.Volumes {
		if v.Named {
			src := filepath.Join(r.Dir, "volumes", v.Source)
			if err := os.MkdirAll(src, 0o755); err != nil {
				return err
			}
			v.Source = src
		}
		st, err := os.Stat(v.Source)
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Source, err)
		}
		if err := mountPoint(root, v.Target, st.IsDir()); err != nil {
			return err
		}
	}
	for _, t := range svc.Tmpfs {
		if err := mountPoint(root, strings.SplitN(t, ":", 2)[0], true); err != nil {
			return err
		}
	}
	if err := mountPoint(root, "/proc", true); err != nil {
		return err
	}

	if svc.ReadOnly {
		if err := run(ctx, "mount", "--bind", root, root); err != nil {
			return err
		}
		if err := run(ctx, "mount", "-o", "remount,bind,ro", root); err != nil {
			return err
		}
	}
	if err := run(ctx, "mount", "-t", "proc", "proc", filepath.Join(root, "proc")); err != nil {
		return err
	}
	if img.Lower == nil {
		// Docker's /dev: a tmpfs with the usual character devices.
		devDir := filepath.Join(root, "dev")
		if err := run(ctx, "mount", "-t", "tmpfs", "-o", "mode=755,nosuid", "tmpfs", devDir); err != nil {
			return err
		}
		for _, d := range []string{"null", "zero", "full", "random", "urandom"} {
			if err := os.WriteFile(filepath.Join(devDir, d), nil, 0o666); err != nil {
				return err
			}
			if err := run(ctx, "mount", "--bind", "/dev/"+d, filepath.Join(devDir, d)); err != nil {
				return err
			}
		}
	}
	for _, b := range binds {
		if err := run(ctx, "mount", "--bind", b[0], filepath.Join(root, b[1])); err != nil {
			return err
		}
	}
	for _, v := range svc.Volumes {
		src := v.Source
		if v.Named {
			src = filepath.Join(r.Dir, "volumes", v.Source)
		}
		target := filepath.Join(root, v.Target)
		if err := run(ctx, "mount", "--bind", src, target); err != nil {
			return err
		}
		if v.ReadOnly {
			if err := run(ctx, "mount", "-o", "remount,bind,ro", target); err != nil {
				return err
			}
		}
	}
	for _, t := range svc.Tmpfs {
		if err := run(ctx, "mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev,noexec", "tmpfs", filepath.Join(root, strings.SplitN(t, ":", 2)[0])); err != nil {
			return err
		}
	}
	return nil
}

// hostVolumes gives a container on this machine's root its named volume as working directory
// (the only volume such a container may have: its image's WORKDIR), owned by its user as the
// image's directory is.
func (r *Runtime) hostVolumes(c *Container, uid, gid int) error {
	for _, v := range c.svc.Volumes {
		if !v.Named || v.Target != c.img.WorkDir {
			return fmt.Errorf("volume %s:%s: a service run on this machine's root can only have a named volume at %s", v.Source, v.Target, c.img.WorkDir)
		}
		dir := filepath.Join(r.Dir, "volumes", v.Source)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		c.dir = dir
	}
	if c.dir == "" {
		return fmt.Errorf("no volume at the image's working directory %s", c.img.WorkDir)
	}
	return nil
}

// mountPoint makes sure p exists in root as a directory (dir) or a file.
func mountPoint(root, p string, dir bool) error {
	full := filepath.Join(root, p)
	if _, err := os.Stat(full); err == nil {
		return nil
	}
	if dir {
		return os.MkdirAll(full, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, nil, 0o644)
}

// resolveUser reads "user[:group]" (names or numbers) against the container's /etc/passwd and
// /etc/group and returns the ids and the home directory.
func (c *Container) resolveUser(spec string) (uid, gid int, home string, err error) {
	if spec == "" {
		return 0, 0, "/root", nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	passwd := readColonFile(filepath.Join(c.Root, "etc/passwd"))
	home = "/"
	found := false
	for _, f := range passwd {
		if len(f) >= 6 && (f[0] == user || f[2] == user) {
			uid, _ = strconv.Atoi(f[2])
			gid, _ = strconv.Atoi(f[3])
			home, found = f[5], true
			break
		}
	}
	if !found {
		if uid, err = strconv.Atoi(user); err != nil {
			return 0, 0, "", fmt.Errorf("no user %s in the image", user)
		}
		gid = uid
	}
	if hasGroup {
		found = false
		for _, f := range readColonFile(filepath.Join(c.Root, "etc/group")) {
			if len(f) >= 3 && (f[0] == group || f[2] == group) {
				gid, _ = strconv.Atoi(f[2])
				found = true
				break
			}
		}
		if !found {
			if gid, err = strconv.Atoi(group); err != nil {
				return 0, 0, "", fmt.Errorf("no group %s in the image", group)
			}
		}
	}
	return uid, gid, home, nil
}

func readColonFile(p string) [][]string {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, strings.Split(sc.Text(), ":"))
	}
	return out
}

// containerEnv is a container's environment as Docker makes it: the image's, HOSTNAME (the
// container id), HOME (the user's), then compose's environment, later values winning.
func containerEnv(image []string, compose map[string]string, home, hostname string) []string {
	vals := map[string]string{}
	var order []string
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range image {
		k, v, _ := strings.Cut(kv, "=")
		set(k, v)
	}
	set("HOSTNAME", hostname)
	if _, ok := vals["HOME"]; !ok {
		set("HOME", home)
	}
	keys := make([]string, 0, len(compose))
	for k := range compose {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		set(k, compose[k])
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out
}

func durationOr(s string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(s); err == nil {
		return d
	}
	return def
}

// run runs a setup command and returns its output with the error.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
