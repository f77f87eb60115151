package stacktest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestComposeDefaults checks what docker/compose.yml promises before anyone configures anything:
// nothing is published beyond the host's loopback unless EARPIECE_BIND says so (ARI never is),
// no SIP password exists, the settings the README documents reach the containers and the image
// builds, earpiece has a fixed instance name, and the images' pins agree with the tests.
func TestComposeDefaults(t *testing.T) {
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is missing: run scripts/test-deps.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mod := moduleRoot(t)
	file := filepath.Join(mod, "docker", "compose.yml")
	def, err := LoadCompose(ctx, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"asterisk", "redis", "earpiece"} {
		if def.Services[name] == nil {
			t.Fatalf("no service %s", name)
		}
	}
	ast, ep := def.Services["asterisk"], def.Services["earpiece"]
	for _, s := range def.Services {
		for _, p := range s.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %d/%s on %q by default, want 127.0.0.1", s.Name, p.HostPort, p.Protocol, p.HostIP)
			}
		}
	}
	if v, ok := ast.Environment["SIP_PASSWORDS"]; !ok || v != "" {
		t.Errorf("asterisk's SIP_PASSWORDS is %q (set: %v) by default, want passed through and empty", v, ok)
	}
	inst := ep.Environment["EARPIECE_INSTANCE"]
	if inst == "" {
		t.Error("compose gives earpiece no EARPIECE_INSTANCE: a re-created container would not know its predecessor's sessions")
	}
	if got := volumeSource(ep, "/etc/earpiece/earpiece.yaml"); got != filepath.Join(mod, "docker", "earpiece.yaml") {
		t.Errorf("earpiece's configuration is %s by default, want docker/earpiece.yaml", got)
	}

	set := map[string]string{
		"EARPIECE_BIND":                   "0.0.0.0",
		"EARPIECE_SIP_PASSWORDS":          "700=abcdefgh",
		"EARPIECE_SIP_LOCAL_NET":          "10.9.0.0/16",
		"EARPIECE_SIP_EXTERNAL_ADDRESS":   "pbx.example.com",
		"EARPIECE_ASTERISK_VERSION":       "1:99.0-1",
		"EARPIECE_APT_MIRROR":             "http://archive.example/debian",
		"EARPIECE_APT_IGNORE_VALID_UNTIL": "true",
		"EARPIECE_CONFIG_FILE":            "/srv/earpiece.yaml",
		"EARPIECE_INSTANCE":               "other",
	}
	got, err := LoadCompose(ctx, file, set)
	if err != nil {
		t.Fatal(err)
	}
	gast, gep := got.Services["asterisk"], got.Services["earpiece"]
	for _, c := range []struct {
		svc  *Service
		port int
		prot string
		want string
	}{
		{gast, 5060, "udp", "0.0.0.0"}, {gast, 10000, "udp", "0.0.0.0"}, {gast, 10200, "udp", "0.0.0.0"},
		{gep, 8080, "tcp", "0.0.0.0"}, {gast, 8088, "tcp", "127.0.0.1"},
	} {
		if p, ok := c.svc.PublishedPort(c.port, c.prot); !ok || p.HostIP != c.want {
			t.Errorf("EARPIECE_BIND=0.0.0.0: %s %d/%s published %+v (%v), want on %s", c.svc.Name, c.port, c.prot, p, ok, c.want)
		}
	}
	for k, want := range map[string]string{"SIP_PASSWORDS": "700=abcdefgh", "SIP_LOCAL_NET": "10.9.0.0/16", "SIP_EXTERNAL_ADDRESS": "pbx.example.com"} {
		if gast.Environment[k] != want {
			t.Errorf("asterisk's %s = %q, want %q from the EARPIECE_ variable", k, gast.Environment[k], want)
		}
	}
	if gep.Environment["EARPIECE_INSTANCE"] != inst {
		t.Errorf("EARPIECE_INSTANCE follows the environment (%q): want compose's fixed name %q", gep.Environment["EARPIECE_INSTANCE"], inst)
	}
	if v := volumeSource(gep, "/etc/earpiece/earpiece.yaml"); v != "/srv/earpiece.yaml" {
		t.Errorf("EARPIECE_CONFIG_FILE=/srv/earpiece.yaml: earpiece's configuration is %s", v)
	}

	// Build args: each documented variable reaches an ARG the Dockerfile declares, and the
	// default version is the Dockerfile's.
	df, err := ParseDockerfile(ast.Build.Dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	declared := df.Final().ArgDefaults()
	for arg, want := range map[string]string{"ASTERISK_VERSION": "1:99.0-1", "APT_MIRROR": "http://archive.example/debian", "APT_IGNORE_VALID_UNTIL": "true"} {
		if _, ok := declared[arg]; !ok {
			t.Errorf("%s declares no ARG %s", df.Path, arg)
		}
		if v := gast.Build.Args[arg]; v != want {
			t.Errorf("build arg %s = %q, want %q from its EARPIECE_ variable", arg, v, want)
		}
	}
	if d := declared["ASTERISK_VERSION"]; d == nil || *d != ast.Build.Args["ASTERISK_VERSION"] {
		t.Errorf("compose's default ASTERISK_VERSION %q differs from the Dockerfile's %v", ast.Build.Args["ASTERISK_VERSION"], d)
	}

	// The Go image must be able to build the module (GOTOOLCHAIN=local in the golang image).
	edf, err := ParseDockerfile(ep.Build.Dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var goImage string
	for _, st := range edf.Stages {
		if strings.HasPrefix(st.From, "golang:") {
			goImage = st.From
		}
	}
	gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindSubmatch(gomod)
	im := regexp.MustCompile(`^golang:(\d+)\.(\d+)`).FindStringSubmatch(goImage)
	if m == nil || im == nil {
		t.Fatalf("go.mod's go line %q or the build image %q unreadable", m, goImage)
	}
	if atoi(im[1])*1000+atoi(im[2]) < atoi(string(m[1]))*1000+atoi(string(m[2])) {
		t.Errorf("%s builds with %s but go.mod needs go %s.%s", edf.Path, goImage, m[1], m[2])
	}
}

func volumeSource(s *Service, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source
		}
	}
	return ""
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestParsePortAndVolume(t *testing.T) {
	for _, c := range []struct {
		spec string
		want Port
	}{
		{"127.0.0.1:5060:5060/udp", Port{"127.0.0.1", 5060, 5060, "udp"}},
		{"8080:80/tcp", Port{"", 8080, 80, "tcp"}},
		{"[::1]:8088:8088/tcp", Port{"::1", 8088, 8088, "tcp"}},
	} {
		if got, err := parsePort(c.spec); err != nil || got != c.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", c.spec, got, err, c.want)
		}
	}
	for _, bad := range []string{"5060/udp", "x:5060:5060", "1.2.3:1:1"} {
		if _, err := parsePort(bad); err == nil {
			t.Errorf("parsePort(%q): no error", bad)
		}
	}
	v, err := parseVolume("/src/conf:/etc/x:ro")
	if err != nil || v != (Volume{Source: "/src/conf", Target: "/etc/x", ReadOnly: true}) {
		t.Errorf("bind volume: %+v, %v", v, err)
	}
	v, err = parseVolume("redis-data:/data:rw")
	if err != nil || v != (Volume{Source: "redis-data", Target: "/data", Named: true}) {
		t.Errorf("named volume: %+v, %v", v, err)
	}
	if _, err := parseVolume("/a:/b:nocopy"); err == nil {
		t.Error("an unknown volume mode is not refused")
	}
}

func TestParseDockerfile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "Dockerfile")
	src := `# comment
FROM golang:1.26 AS build
ARG A=1
ARG B
RUN one \
    # a comment inside the continuation
    two \

    three
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/x /x
ENTRYPOINT ["/x"]
CMD ["serve", "--flag"]
`
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	df, err := ParseDockerfile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Stages) != 2 || df.Stages[0].Name != "build" || df.Final().From != "gcr.io/distroless/static-debian12:nonroot" {
		t.Fatalf("stages: %+v", df.Stages)
	}
	run := df.Stages[0].Instructions[2]
	if run.Cmd != "RUN" || strings.Join(strings.Fields(run.Args), " ") != "one two three" || run.Line != 5 {
		t.Errorf("continued RUN: %+v", run)
	}
	args := df.Stages[0].ArgDefaults()
	if a := args["A"]; a == nil || *a != "1" || args["B"] != nil {
		t.Errorf("ARG defaults: %v", args)
	}
	ep, _ := df.Final().Last("ENTRYPOINT")
	if argv, err := ExecForm(ep.Args); err != nil || !slices.Equal(argv, []string{"/x"}) {
		t.Errorf("ENTRYPOINT: %q %v", argv, err)
	}
	flags, srcs, dst, err := CopyArgs("--from=build /out/x /x")
	if err != nil || flags["from"] != "build" || !slices.Equal(srcs, []string{"/out/x"}) || dst != "/x" {
		t.Errorf("CopyArgs: %v %q %q %v", flags, srcs, dst, err)
	}
	if argv, _ := ExecForm("curl -f x || exit 1"); !slices.Equal(argv, []string{"/bin/sh", "-c", "curl -f x || exit 1"}) {
		t.Errorf("shell form: %q", argv)
	}
}

func TestDockerignore(t *testing.T) {
	rules, err := parseDockerignore(strings.NewReader("# c\n.git\n/bin\ncoverage*\n*.test\ndocker\n**/*.tmp\n!keep.tmp\n"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]bool{
		".git": true, ".git/config": true, "bin/earpiece": true, "cmd/bin/x": false, "coverage.out": true,
		"app.test": true, "app/app.test": false, "docker/compose.yml": true, "a/b/c.tmp": true, "keep.tmp": false,
		"go.mod": false, "cmd/earpiece/main.go": false,
	} {
		if got := ignored(rules, rel); got != want {
			t.Errorf("ignored(%q) = %v, want %v", rel, got, want)
		}
	}
}

func TestMapPaths(t *testing.T) {
	m := map[string]string{"/out": "/tmp/w/out", "/src": "/tmp/w/src"}
	got := mapPaths(`CGO_ENABLED=0 go build -o /out/earpiece ./cmd/earpiece && cp x /outside/y && ls /src;`, m)
	want := `CGO_ENABLED=0 go build -o /tmp/w/out/earpiece ./cmd/earpiece && cp x /outside/y && ls /tmp/w/src;`
	if got != want {
		t.Errorf("mapPaths:\n got %s\nwant %s", got, want)
	}
}

func TestCapabilities(t *testing.T) {
	for _, c := range []struct {
		add, drop, want []string
	}{
		{nil, []string{"ALL"}, nil},
		{[]string{"CHOWN", "cap_setuid"}, []string{"ALL"}, []string{"CHOWN", "SETUID"}},
		{nil, []string{"NET_RAW"}, []string{"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP"}},
	} {
		got, err := (&Service{CapAdd: c.add, CapDrop: c.drop}).Capabilities()
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("add %v drop %v: %v %v, want %v", c.add, c.drop, got, err, c.want)
		}
	}
	if CapMask([]string{"CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"}) != 0xc3 {
		t.Error("CapMask")
	}
	if _, err := (&Service{CapAdd: []string{"FLY"}}).Capabilities(); err == nil {
		t.Error("an unknown capability is not refused")
	}
}
