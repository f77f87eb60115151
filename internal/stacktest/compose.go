package stacktest

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Project is a compose file as `docker-compose config` resolves it.
type Project struct {
	File     string // the compose file
	Dir      string // its directory (relative paths of the file are resolved against it)
	Services map[string]*Service
}

// Service is one service of a Project.
type Service struct {
	Name        string
	Build       *Build
	Image       string
	Entrypoint  []string // nil: the image's
	Command     []string // nil: the image's
	User        string   // "": the image's
	Environment map[string]string
	Ports       []Port
	Volumes     []Volume
	Tmpfs       []string
	ReadOnly    bool
	Init        bool
	// StopGrace is how long `docker compose stop` waits after SIGTERM before SIGKILL
	// (stop_grace_period; compose's default 10 s).
	StopGrace   time.Duration
	CapAdd      []string
	CapDrop     []string
	SecurityOpt []string
	Healthcheck *Healthcheck
	DependsOn   map[string]string // service -> condition
}

// Build is a service's build section.
type Build struct {
	Context    string // absolute
	Dockerfile string // absolute
	Args       map[string]string
}

// Port is one published port (compose has expanded ranges).
type Port struct {
	HostIP        string // "" means every address
	HostPort      int
	ContainerPort int
	Protocol      string // tcp or udp
}

// Volume is one mount: a bind mount (Source absolute) or a named volume (Named).
type Volume struct {
	Source   string
	Target   string
	Named    bool
	ReadOnly bool
}

// Healthcheck is a service's health check.
type Healthcheck struct {
	Test        []string // ["CMD", ...] or ["CMD-SHELL", "..."]
	Interval    string
	Timeout     string
	StartPeriod string
	Retries     int
}

// NoNewPrivileges reports whether security_opt sets no-new-privileges.
func (s *Service) NoNewPrivileges() bool {
	for _, o := range s.SecurityOpt {
		if o == "no-new-privileges" || o == "no-new-privileges:true" || o == "no-new-privileges=true" {
			return true
		}
	}
	return false
}

// PublishedPort finds the port published for the container's port/protocol.
func (s *Service) PublishedPort(containerPort int, protocol string) (Port, bool) {
	for _, p := range s.Ports {
		if p.ContainerPort == containerPort && p.Protocol == protocol {
			return p, true
		}
	}
	return Port{}, false
}

// LoadCompose resolves file with `docker-compose config` under exactly env (plus PATH): no
// other variable of the caller's environment and no .env file takes part, so the result does not
// depend on who runs it.
func LoadCompose(ctx context.Context, file string, env map[string]string) (*Project, error) {
	file, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	empty, err := os.CreateTemp("", "stacktest-env-")
	if err != nil {
		return nil, err
	}
	empty.Close()
	defer os.Remove(empty.Name())
	cmd := exec.CommandContext(ctx, "docker-compose", "-f", file, "--env-file", empty.Name(), "config")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("docker-compose -f %s config: %w\n%s", file, err, stderr.String())
	}
	return parseComposeConfig(file, out)
}

// composeFile is the part of `docker-compose config`'s output the emulation reads.
type composeFile struct {
	Services map[string]struct {
		Build *struct {
			Context    string            `yaml:"context"`
			Dockerfile string            `yaml:"dockerfile"`
			Args       map[string]string `yaml:"args"`
		} `yaml:"build"`
		Image       string            `yaml:"image"`
		Entrypoint  yaml.Node         `yaml:"entrypoint"`
		Command     yaml.Node         `yaml:"command"`
		User        string            `yaml:"user"`
		Environment map[string]string `yaml:"environment"`
		Ports       []string          `yaml:"ports"`
		Volumes     []string          `yaml:"volumes"`
		Tmpfs       yaml.Node         `yaml:"tmpfs"`
		ReadOnly    bool              `yaml:"read_only"`
		StopGrace   string            `yaml:"stop_grace_period"`
		Init        bool              `yaml:"init"`
		CapAdd      []string          `yaml:"cap_add"`
		CapDrop     []string          `yaml:"cap_drop"`
		SecurityOpt []string          `yaml:"security_opt"`
		Healthcheck *struct {
			Test        yaml.Node `yaml:"test"`
			Interval    string    `yaml:"interval"`
			Timeout     string    `yaml:"timeout"`
			StartPeriod string    `yaml:"start_period"`
			Retries     int       `yaml:"retries"`
			Disable     bool      `yaml:"disable"`
		} `yaml:"healthcheck"`
		DependsOn map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
	} `yaml:"services"`
}

func parseComposeConfig(file string, out []byte) (*Project, error) {
	// `config` writes every "$" of a value as "$$", so that its output is a valid compose file.
	var cf composeFile
	if err := yaml.Unmarshal(out, &cf); err != nil {
		return nil, fmt.Errorf("docker-compose config output: %w", err)
	}
	p := &Project{File: file, Dir: filepath.Dir(file), Services: map[string]*Service{}}
	for name, raw := range cf.Services {
		s := &Service{
			Name: name, Image: raw.Image, User: unescape(raw.User), ReadOnly: raw.ReadOnly, Init: raw.Init,
			CapAdd: raw.CapAdd, CapDrop: raw.CapDrop, SecurityOpt: raw.SecurityOpt,
			Environment: map[string]string{}, DependsOn: map[string]string{},
		}
		s.StopGrace = 10 * time.Second
		if raw.StopGrace != "" {
			d, err := time.ParseDuration(raw.StopGrace)
			if err != nil {
				return nil, fmt.Errorf("service %s: stop_grace_period %q: %w", name, raw.StopGrace, err)
			}
			s.StopGrace = d
		}
		var err error
		if s.Entrypoint, err = stringList(&raw.Entrypoint); err != nil {
			return nil, fmt.Errorf("service %s: entrypoint: %w", name, err)
		}
		if s.Command, err = stringList(&raw.Command); err != nil {
			return nil, fmt.Errorf("service %s: command: %w", name, err)
		}
		if s.Tmpfs, err = stringList(&raw.Tmpfs); err != nil {
			return nil, fmt.Errorf("service %s: tmpfs: %w", name, err)
		}
		for k, v := range raw.Environment {
			s.Environment[k] = unescape(v)
		}
		if raw.Build != nil {
			s.Build = &Build{Context: raw.Build.Context, Dockerfile: raw.Build.Dockerfile, Args: map[string]string{}}
			if !filepath.IsAbs(s.Build.Dockerfile) {
				s.Build.Dockerfile = filepath.Join(s.Build.Context, s.Build.Dockerfile)
			}
			for k, v := range raw.Build.Args {
				s.Build.Args[k] = unescape(v)
			}
		}
		for _, spec := range raw.Ports {
			port, err := parsePort(spec)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", name, err)
			}
			s.Ports = append(s.Ports, port)
		}
		for _, spec := range raw.Volumes {
			v, err := parseVolume(spec)
			if err != nil {
				return nil, fmt.Errorf("service %s: %w", name, err)
			}
			s.Volumes = append(s.Volumes, v)
		}
		if hc := raw.Healthcheck; hc != nil && !hc.Disable {
			test, err := stringList(&hc.Test)
			if err != nil {
				return nil, fmt.Errorf("service %s: healthcheck test: %w", name, err)
			}
			s.Healthcheck = &Healthcheck{Test: test, Interval: hc.Interval, Timeout: hc.Timeout, StartPeriod: hc.StartPeriod, Retries: hc.Retries}
		}
		for dep, d := range raw.DependsOn {
			s.DependsOn[dep] = d.Condition
		}
		p.Services[name] = s
	}
	return p, nil
}

// ServiceNames lists the services in an order that starts every service after those it depends
// on (alphabetical among equals).
func (p *Project) ServiceNames() ([]string, error) {
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("depends_on cycle through %s", n)
		case 2:
			return nil
		}
		s, ok := p.Services[n]
		if !ok {
			return fmt.Errorf("depends_on names unknown service %s", n)
		}
		state[n] = 1
		var deps []string
		for d := range s.DependsOn {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		out = append(out, n)
		return nil
	}
	for _, n := range names {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func unescape(s string) string { return strings.ReplaceAll(s, "$$", "$") }

// stringList reads a compose value that is a list of strings or one string (for command and
// entrypoint a string is split on blanks: quoting in that form is not supported).
func stringList(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.ScalarNode:
		return strings.Fields(unescape(n.Value)), nil
	case yaml.SequenceNode:
		var out []string
		if err := n.Decode(&out); err != nil {
			return nil, err
		}
		for i := range out {
			out[i] = unescape(out[i])
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings at line %d", n.Line)
}

// parsePort reads "[ip:]host:container[/proto]" as `docker-compose config` writes it.
func parsePort(spec string) (Port, error) {
	p := Port{Protocol: "tcp"}
	rest := spec
	if i := strings.LastIndex(rest, "/"); i >= 0 {
		p.Protocol, rest = rest[i+1:], rest[:i]
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return Port{}, fmt.Errorf("port %q: not published on the host", spec)
	}
	var err error
	if p.ContainerPort, err = strconv.Atoi(rest[i+1:]); err != nil {
		return Port{}, fmt.Errorf("port %q: %w", spec, err)
	}
	rest = rest[:i]
	if j := strings.LastIndex(rest, ":"); j >= 0 {
		p.HostIP, rest = strings.Trim(rest[:j], "[]"), rest[j+1:]
		if _, err := netip.ParseAddr(p.HostIP); err != nil {
			return Port{}, fmt.Errorf("port %q: host address: %w", spec, err)
		}
	}
	if p.HostPort, err = strconv.Atoi(rest); err != nil {
		return Port{}, fmt.Errorf("port %q: host port: %w", spec, err)
	}
	return p, nil
}

// parseVolume reads "source:target[:mode]".
func parseVolume(spec string) (Volume, error) {
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Volume{}, fmt.Errorf("volume %q: want SOURCE:TARGET[:MODE]", spec)
	}
	v := Volume{Source: parts[0], Target: parts[1], Named: !filepath.IsAbs(parts[0])}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro":
				v.ReadOnly = true
			case "rw", "z", "Z", "cached", "delegated", "consistent":
			default:
				return Volume{}, fmt.Errorf("volume %q: mode %q is not emulated", spec, o)
			}
		}
	}
	return v, nil
}
