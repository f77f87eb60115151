package stacktest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Image is what a container starts from.
type Image struct {
	// Lower are the overlay layers of an image built on the Debian root, topmost first. Empty for
	// a static image.
	Lower []string
	// Files of a static image (distroless): container path -> file on this machine.
	Files       map[string]string
	Env         []string // KEY=VALUE: the base image's, then the Dockerfile's ENV
	Entrypoint  []string
	Cmd         []string
	User        string // "" is root
	WorkDir     string
	Healthcheck []string // the Dockerfile's HEALTHCHECK CMD, argv form (compose's replaces it)
	// Host: the image is this machine's own installation of a program (redis-server for
	// redis:7); its containers run on this machine's root, with their volume as the working
	// directory.
	Host bool
}

// RedisImage stands for the redis:7 image with this machine's Redis 7 (Debian 12's
// redis-server): the image's entrypoint runs the command as the redis user (uid 999) in /data.
func RedisImage() *Image {
	return &Image{Host: true, Env: debianEnv, Cmd: []string{"redis-server"}, User: "999:999", WorkDir: "/data"}
}

// debianEnv and distrolessEnv are the environments the base images set.
var (
	debianEnv     = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	distrolessEnv = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
)

// BaseArchive returns the Debian archive URI of the root scripts/asterisk-root.sh built (from its
// one-line sources.list), which the emulated debian:sid-slim image uses.
func BaseArchive(base string) (string, error) {
	f, err := os.Open(filepath.Join(base, "etc/apt/sources.list"))
	if err != nil {
		return "", fmt.Errorf("the Debian root's apt sources: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) >= 2 && fl[0] == "deb" {
			return fl[1], nil
		}
	}
	return "", fmt.Errorf("no deb line in %s/etc/apt/sources.list", base)
}

// buildState walks a stage's instructions the way docker build does.
type buildState struct {
	args    map[string]string // ARG values in effect (declared and set)
	env     []string
	user    string
	workdir string
	img     *Image
}

func newBuildState(env []string) *buildState {
	return &buildState{args: map[string]string{}, env: append([]string(nil), env...), workdir: "/", img: &Image{}}
}

func (b *buildState) lookup(name string) string {
	for i := len(b.env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(b.env[i], "="); k == name {
			return v
		}
	}
	return b.args[name]
}

func (b *buildState) expand(s string) string { return os.Expand(s, b.lookup) }

// runEnv is the environment of a RUN: the ARGs, then the image's environment over them.
func (b *buildState) runEnv() []string {
	var out []string
	names := make([]string, 0, len(b.args))
	for k := range b.args {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		out = append(out, k+"="+b.args[k])
	}
	return append(out, b.env...)
}

// apply handles the instructions that only change the build's state or the image's
// configuration, and reports whether in was one of them.
func (b *buildState) apply(in Instruction, buildArgs map[string]string) (bool, error) {
	switch in.Cmd {
	case "ARG":
		name, def, hasDef := strings.Cut(in.Args, "=")
		if v, ok := buildArgs[name]; ok {
			b.args[name] = v
		} else if hasDef {
			b.args[name] = b.expand(def)
		}
	case "ENV":
		k, v, ok := strings.Cut(in.Args, "=")
		if !ok {
			k, v, _ = strings.Cut(in.Args, " ")
		}
		if strings.ContainsAny(k, " \t") {
			return true, fmt.Errorf("line %d: ENV with several variables is not emulated", in.Line)
		}
		v = strings.Trim(b.expand(strings.TrimSpace(v)), `"`)
		b.env = append(b.env, k+"="+v)
		b.img.Env = append(b.img.Env, k+"="+v)
	case "USER":
		b.user = b.expand(in.Args)
		b.img.User = b.user
	case "WORKDIR":
		wd := b.expand(in.Args)
		if !path.IsAbs(wd) {
			wd = path.Join(b.workdir, wd)
		}
		b.workdir = wd
		b.img.WorkDir = wd
	case "ENTRYPOINT", "CMD":
		argv, err := ExecForm(in.Args)
		if err != nil {
			return true, fmt.Errorf("line %d: %w", in.Line, err)
		}
		if in.Cmd == "ENTRYPOINT" {
			b.img.Entrypoint = argv
		} else {
			b.img.Cmd = argv
		}
	case "HEALTHCHECK":
		_, cmd, ok := strings.Cut(in.Args, " CMD ")
		if !ok {
			return true, fmt.Errorf("line %d: HEALTHCHECK without CMD is not emulated", in.Line)
		}
		argv, err := ExecForm(cmd)
		if err != nil {
			return true, fmt.Errorf("line %d: %w", in.Line, err)
		}
		b.img.Healthcheck = argv
	case "EXPOSE", "LABEL":
	default:
		return false, nil
	}
	return true, nil
}

// BuildDebian emulates `docker build` of df, a single stage FROM debian:sid-slim, with the build
// args of compose: the RUN and COPY instructions run, in order, in an overlay on base (the Debian
// sid root of scripts/asterisk-root.sh made to look like the debian:sid-slim image). The
// overlay's upper layer is the image; it is kept under cacheDir, keyed by everything that goes
// into it, and reused while none of that changes. log receives the build's output.
func BuildDebian(ctx context.Context, df *Dockerfile, contextDir string, buildArgs map[string]string, base, cacheDir string, log io.Writer) (*Image, error) {
	if len(df.Stages) != 1 {
		return nil, fmt.Errorf("%s: multi-stage builds on Debian are not emulated", df.Path)
	}
	st := df.Stages[0]
	switch st.From {
	case "debian:sid-slim", "debian:sid", "debian:unstable-slim", "debian:unstable":
	default:
		return nil, fmt.Errorf("%s: FROM %s: only Debian sid images are emulated (the test root is sid)", df.Path, st.From)
	}
	rules, err := loadDockerignore(df.Path, contextDir)
	if err != nil {
		return nil, err
	}
	b := newBuildState(debianEnv)
	b.img.Env = append([]string(nil), debianEnv...)
	hash := sha256.New()
	fmt.Fprintf(hash, "stacktest debian image v1\n")
	stamp, err := os.ReadFile(filepath.Join(base, ".earpiece-ready"))
	if err != nil {
		return nil, fmt.Errorf("the Debian root %s is not ready: %w", base, err)
	}
	fmt.Fprintf(hash, "base %s %s\n", base, stamp)

	// The build script: the steps run in a private mount namespace, in the overlay.
	var script strings.Builder
	script.WriteString(`set -eu
M=$1
# FROM debian:sid-slim: the image's apt sources are deb822 and it carries no mmdebstrap options.
if [ -f "$M/etc/apt/sources.list" ]; then
  uri=$(awk '$1 == "deb" { print $2; exit }' "$M/etc/apt/sources.list")
  rm -f "$M/etc/apt/sources.list"
  printf 'Types: deb\nURIs: %s\nSuites: sid\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
    >"$M/etc/apt/sources.list.d/debian.sources"
fi
rm -f "$M/etc/apt/apt.conf.d/99mmdebstrap"
mount -t proc proc "$M/proc"
if [ -f "$M/etc/resolv.conf" ] && [ ! -L "$M/etc/resolv.conf" ]; then
  mount --bind /etc/resolv.conf "$M/etc/resolv.conf"
fi
`)
	for _, in := range st.Instructions {
		fmt.Fprintf(hash, "%d %s %s\n", in.Line, in.Cmd, in.Args)
		done, err := b.apply(in, buildArgs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", df.Path, err)
		}
		if done {
			continue
		}
		switch in.Cmd {
		case "RUN":
			if b.user != "" && b.user != "root" && b.user != "0" {
				return nil, fmt.Errorf("%s:%d: RUN as USER %s is not emulated", df.Path, in.Line, b.user)
			}
			argv, err := ExecForm(in.Args)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", df.Path, in.Line, err)
			}
			env := append([]string{"HOME=/root"}, b.runEnv()...) // HOME: what Docker adds for root
			fmt.Fprintf(hash, "env %q\n", env)
			fmt.Fprintf(&script, "echo %s >&2\n", shellQuote(fmt.Sprintf("stacktest: %s:%d RUN", filepath.Base(df.Path), in.Line)))
			fmt.Fprintf(&script, "chroot \"$M\" /usr/bin/env -i -C %s", shellQuote(b.workdir))
			for _, kv := range env {
				script.WriteString(" " + shellQuote(kv))
			}
			for _, a := range argv {
				script.WriteString(" " + shellQuote(a))
			}
			script.WriteString("\n")
		case "COPY":
			flags, srcs, dst, err := CopyArgs(b.expand(in.Args))
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", df.Path, in.Line, err)
			}
			if len(flags) > 0 {
				return nil, fmt.Errorf("%s:%d: COPY flags are not emulated", df.Path, in.Line)
			}
			if !path.IsAbs(dst) {
				trailing := strings.HasSuffix(dst, "/")
				dst = path.Join(b.workdir, dst)
				if trailing {
					dst += "/"
				}
			}
			for _, src := range srcs {
				if strings.ContainsAny(src, "*?[") {
					return nil, fmt.Errorf("%s:%d: COPY with wildcards is not emulated", df.Path, in.Line)
				}
				if ignored(rules, strings.TrimPrefix(path.Clean("/"+src), "/")) {
					return nil, fmt.Errorf("%s:%d: COPY %s: left out of the build context by .dockerignore", df.Path, in.Line, src)
				}
				host := filepath.Join(contextDir, filepath.FromSlash(path.Clean("/"+src)))
				if err := hashTree(hash, host); err != nil {
					return nil, fmt.Errorf("%s:%d: COPY %s: %w", df.Path, in.Line, src, err)
				}
				target := dst
				if strings.HasSuffix(dst, "/") || len(srcs) > 1 {
					target = path.Join(dst, path.Base(src))
				}
				fmt.Fprintf(&script, "mkdir -p \"$M\"%s\ncp -R --preserve=mode,timestamps %s \"$M\"%s\nchown -R 0:0 \"$M\"%s\n",
					shellQuote(path.Dir(target)), shellQuote(host), shellQuote(target), shellQuote(target))
			}
		default:
			return nil, fmt.Errorf("%s:%d: %s is not emulated", df.Path, in.Line, in.Cmd)
		}
	}
	img := b.img
	img.Env = b.env
	key := hex.EncodeToString(hash.Sum(nil))[:24]
	dir := filepath.Join(cacheDir, "images", key)
	img.Lower = []string{filepath.Join(dir, "layer"), base}
	ready := filepath.Join(dir, "ready")
	if _, err := os.Stat(ready); err == nil {
		now := time.Now()
		_ = os.Chtimes(ready, now, now) // last used: see pruneImages
		return img, nil
	}

	if err := os.MkdirAll(filepath.Join(cacheDir, "images"), 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(cacheDir, "images", ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
		return img, nil // built by another test binary meanwhile
	}
	tmp, err := os.MkdirTemp(filepath.Join(cacheDir, "images"), "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, err
		}
	}
	full := fmt.Sprintf("mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s \"$1\"\n%s",
		shellQuote(base), shellQuote(filepath.Join(tmp, "upper")), shellQuote(filepath.Join(tmp, "work")), script.String())
	scriptPath := filepath.Join(tmp, "build.sh")
	if err := os.WriteFile(scriptPath, []byte(full), 0o644); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", scriptPath, filepath.Join(tmp, "merged"))
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("building %s by its RUN and COPY steps: %w", df.Path, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Rename(filepath.Join(tmp, "upper"), filepath.Join(dir, "layer")); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ready, []byte(df.Path+"\n"), 0o644); err != nil {
		return nil, err
	}
	pruneImages(filepath.Join(cacheDir, "images"), key, log)
	return img, nil
}

// pruneImages removes the cached images (other than keep) nobody used for a week, and builds
// that never finished. The caller holds the images lock.
func pruneImages(dir, keep string, log io.Writer) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || e.Name() == keep {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), "build-") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.RemoveAll(p)
			}
			continue
		}
		info, err := os.Stat(filepath.Join(p, "ready"))
		if err == nil && time.Since(info.ModTime()) < 7*24*time.Hour {
			continue
		}
		fmt.Fprintf(log, "stacktest: removing the unused cached image %s\n", p)
		os.RemoveAll(p)
	}
}

// hashTree adds a file's or a directory's content and modes to h.
func hashTree(h io.Writer, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fmt.Fprintf(h, "%s %v\n", rel, info.Mode())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
}

// GoStage describes the Go build stage an emulated static image came from.
type GoStage struct {
	Image     string // e.g. golang:1.26-bookworm
	GoVersion string // the image's Go version, e.g. 1.26
}

// BuildStatic emulates `docker build` of df, whose last stage is FROM gcr.io/distroless/static
// and gets its files with COPY --from=<stage>: that stage's COPY and RUN instructions run with
// this machine's Go (standing in for the golang image) in workDir, on a copy of contextDir
// filtered by the build's .dockerignore. The stage's WORKDIR and the directories the final
// stage copies from are mapped into workDir: RUN commands are run with those absolute paths
// replaced. log receives the build's output.
func BuildStatic(ctx context.Context, df *Dockerfile, contextDir string, buildArgs map[string]string, workDir string, log io.Writer) (*Image, *GoStage, error) {
	final := df.Final()
	if !strings.HasPrefix(final.From, "gcr.io/distroless/static") {
		return nil, nil, fmt.Errorf("%s: FROM %s: only gcr.io/distroless/static is emulated as a final stage", df.Path, final.From)
	}
	fb := newBuildState(distrolessEnv)
	fb.img.Env = nil
	fb.img.Files = map[string]string{}
	if strings.HasSuffix(final.From, ":nonroot") || strings.Contains(final.From, ":nonroot-") {
		fb.user, fb.img.User, fb.workdir, fb.img.WorkDir = "65532", "65532", "/home/nonroot", "/home/nonroot"
	}
	type fromCopy struct{ stage, src, dst string }
	var copies []fromCopy
	for _, in := range final.Instructions {
		done, err := fb.apply(in, buildArgs)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", df.Path, err)
		}
		if done {
			continue
		}
		if in.Cmd != "COPY" {
			return nil, nil, fmt.Errorf("%s:%d: %s in the distroless stage is not emulated", df.Path, in.Line, in.Cmd)
		}
		flags, srcs, dst, err := CopyArgs(fb.expand(in.Args))
		if err != nil || flags["from"] == "" || len(srcs) != 1 {
			return nil, nil, fmt.Errorf("%s:%d: only COPY --from=STAGE SRC DST is emulated in the distroless stage", df.Path, in.Line)
		}
		copies = append(copies, fromCopy{flags["from"], srcs[0], dst})
	}
	fb.img.Env = append(append([]string(nil), distrolessEnv...), fb.img.Env...)
	if len(copies) == 0 {
		return nil, nil, fmt.Errorf("%s: the distroless stage copies nothing", df.Path)
	}
	stageName := copies[0].stage
	st, ok := df.StageNamed(stageName)
	if !ok {
		return nil, nil, fmt.Errorf("%s: no stage named %s", df.Path, stageName)
	}
	gs := &GoStage{Image: st.From}
	m := regexp.MustCompile(`^golang:(\d+\.\d+)`).FindStringSubmatch(st.From)
	if m == nil {
		return nil, nil, fmt.Errorf("%s: stage %s is FROM %s: only golang:<version> build stages are emulated", df.Path, stageName, st.From)
	}
	gs.GoVersion = m[1]

	rules, err := loadDockerignore(df.Path, contextDir)
	if err != nil {
		return nil, nil, err
	}
	ctxCopy := filepath.Join(workDir, "context")
	if err := copyContext(contextDir, ctxCopy, rules); err != nil {
		return nil, nil, fmt.Errorf("copying the build context %s: %w", contextDir, err)
	}
	// Absolute paths of the build stage and where they are here.
	mapped := map[string]string{}
	for _, c := range copies {
		if c.stage != stageName {
			return nil, nil, fmt.Errorf("%s: copies from several stages are not emulated", df.Path)
		}
		mapped[path.Dir(c.src)] = filepath.Join(workDir, "stage", strings.TrimPrefix(path.Dir(c.src), "/"))
	}
	b := newBuildState(goEnv())
	var wdHost string
	setWD := func(wd string) error {
		if _, ok := mapped[wd]; !ok {
			mapped[wd] = filepath.Join(workDir, "stage", strings.TrimPrefix(wd, "/"))
		}
		wdHost = mapped[wd]
		return os.MkdirAll(wdHost, 0o755)
	}
	if err := setWD("/"); err != nil {
		return nil, nil, err
	}
	for _, dir := range mapped {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, err
		}
	}
	for _, in := range st.Instructions {
		done, err := b.apply(in, buildArgs)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", df.Path, err)
		}
		if in.Cmd == "WORKDIR" {
			if err := setWD(b.workdir); err != nil {
				return nil, nil, err
			}
		}
		if done {
			continue
		}
		switch in.Cmd {
		case "COPY":
			flags, srcs, dst, err := CopyArgs(b.expand(in.Args))
			if err != nil || len(flags) > 0 {
				return nil, nil, fmt.Errorf("%s:%d: only COPY SRC... DST from the context is emulated in the build stage", df.Path, in.Line)
			}
			if path.IsAbs(dst) {
				return nil, nil, fmt.Errorf("%s:%d: COPY to an absolute path in the build stage is not emulated", df.Path, in.Line)
			}
			for _, src := range srcs {
				from := filepath.Join(ctxCopy, filepath.FromSlash(path.Clean("/"+src)))
				to := filepath.Join(wdHost, filepath.FromSlash(dst))
				if src == "." {
					to = filepath.Join(wdHost, filepath.FromSlash(dst))
				} else if strings.HasSuffix(dst, "/") || dst == "." || len(srcs) > 1 {
					to = filepath.Join(to, path.Base(src))
				}
				if err := copyTree(from, to); err != nil {
					return nil, nil, fmt.Errorf("%s:%d: COPY %s (after .dockerignore): %w", df.Path, in.Line, src, err)
				}
			}
		case "RUN":
			argv, err := ExecForm(in.Args)
			if err != nil || argv[0] != "/bin/sh" {
				return nil, nil, fmt.Errorf("%s:%d: only shell-form RUN is emulated in the build stage", df.Path, in.Line)
			}
			script := mapPaths(argv[2], mapped)
			fmt.Fprintf(log, "stacktest: %s:%d RUN %s\n", filepath.Base(df.Path), in.Line, script)
			cmd := exec.CommandContext(ctx, "/bin/sh", "-c", script)
			cmd.Dir = wdHost
			cmd.Env = b.runEnv()
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Run(); err != nil {
				return nil, nil, fmt.Errorf("%s:%d: RUN: %w", df.Path, in.Line, err)
			}
		default:
			return nil, nil, fmt.Errorf("%s:%d: %s in the build stage is not emulated", df.Path, in.Line, in.Cmd)
		}
	}
	for _, c := range copies {
		host := filepath.Join(mapped[path.Dir(c.src)], path.Base(c.src))
		if err := staticELF(host); err != nil {
			return nil, nil, fmt.Errorf("%s: COPY --from=%s %s: %w", df.Path, c.stage, c.src, err)
		}
		fb.img.Files[c.dst] = host
	}
	return fb.img, gs, nil
}

// goEnv is the environment of the emulated golang image: this machine's Go, its caches, and
// nothing from the caller that the image would not have (GOFLAGS, cross-compilation, -race's
// cgo setting).
func goEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOOS", "GOARCH", "CGO_ENABLED", "GOEXPERIMENT", "GOTOOLCHAIN", "GOWORK", "GO111MODULE", "PATH":
			continue
		}
		env = append(env, kv)
	}
	// The Go that runs the tests (go test sets GOROOT for the test binary), else PATH's.
	p := os.Getenv("PATH")
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p = filepath.Join(goroot, "bin") + string(os.PathListSeparator) + p
	}
	return append(env, "PATH="+p, "GOTOOLCHAIN=local")
}

// mapPaths replaces the absolute directories of mapped (and paths below them) in a shell
// command, where they stand as words or after "=".
func mapPaths(s string, mapped map[string]string) string {
	dirs := make([]string, 0, len(mapped))
	for d := range mapped {
		if d != "/" {
			dirs = append(dirs, d)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		re := regexp.MustCompile(`(^|[\s="'])` + regexp.QuoteMeta(d) + `(/|$|[\s"';&|])`)
		s = re.ReplaceAllString(s, "${1}"+strings.ReplaceAll(mapped[d], "$", "$$")+"${2}")
	}
	return s
}

// copyTree copies a file or a directory tree.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return copyEntry(p, filepath.Join(dst, rel), d)
	})
}

// staticELF checks that p is an executable a distroless/static image can run: an ELF file with
// no program interpreter (no dynamic loader, no libc needed).
func staticELF(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("not an executable the build produced: %w", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errors.New("dynamically linked: distroless/static has no dynamic loader or libc (build with CGO_ENABLED=0)")
		}
	}
	return nil
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// lockFile takes an exclusive flock on p until the returned func runs.
func lockFile(p string) (func(), error) {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	return func() { f.Close() }, nil
}
