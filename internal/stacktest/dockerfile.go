package stacktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// Dockerfile is a parsed Dockerfile: its stages in order.
type Dockerfile struct {
	Path   string
	Stages []*Stage
}

// Stage is one FROM and the instructions after it.
type Stage struct {
	From         string // image reference
	Name         string // AS name ("" when unnamed)
	Instructions []Instruction
}

// Instruction is one Dockerfile instruction with its continuation lines joined.
type Instruction struct {
	Cmd  string // upper case: RUN, COPY, ARG, ...
	Args string // the rest of the instruction, as written (continuations removed)
	Line int    // where it starts (1-based)
}

// ParseDockerfile reads a Dockerfile. It supports the syntax this repository uses: comments,
// backslash continuations (comment and blank lines inside them are dropped, as Docker does),
// and rejects parser directives and heredocs, which it does not emulate.
func ParseDockerfile(path string) (*Dockerfile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w", err)
	}
	df := &Dockerfile{Path: path}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var (
		cur   strings.Builder
		start int
		n     int
	)
	flush := func() error {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return nil
		}
		cmd, args, _ := strings.Cut(text, " ")
		in := Instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start}
		if strings.Contains(in.Args, "<<") && (in.Cmd == "RUN" || in.Cmd == "COPY") {
			return fmt.Errorf("%s:%d: heredocs are not emulated", path, start)
		}
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			st := &Stage{From: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.Name = f[2]
			} else if len(f) != 1 {
				return fmt.Errorf("%s:%d: FROM %s: want IMAGE [AS NAME]", path, start, in.Args)
			}
			df.Stages = append(df.Stages, st)
			return nil
		}
		if len(df.Stages) == 0 {
			if in.Cmd != "ARG" {
				return fmt.Errorf("%s:%d: %s before FROM", path, start, in.Cmd)
			}
			return nil // global ARGs: only for FROM lines, which this repository does not parameterise
		}
		st := df.Stages[len(df.Stages)-1]
		st.Instructions = append(st.Instructions, in)
		return nil
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		continuing := cur.Len() > 0
		if strings.HasPrefix(trimmed, "#") {
			if !continuing && n == 1 && strings.Contains(trimmed, "=") && !strings.Contains(trimmed, " ") {
				return nil, fmt.Errorf("%s:1: parser directives are not emulated", path)
			}
			continue
		}
		if trimmed == "" {
			continue // between instructions, or inside a continuation (dropped, as Docker does)
		}
		if !continuing {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%s: ends inside a continued instruction", path)
	}
	if len(df.Stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", path)
	}
	return df, nil
}

// Final is the last stage (the image).
func (d *Dockerfile) Final() *Stage { return d.Stages[len(d.Stages)-1] }

// StageNamed finds a stage by its AS name.
func (d *Dockerfile) StageNamed(name string) (*Stage, bool) {
	for _, s := range d.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Last returns the last instruction cmd of the stage (ENTRYPOINT, CMD, USER, WORKDIR: the last
// one counts).
func (s *Stage) Last(cmd string) (Instruction, bool) {
	for i := len(s.Instructions) - 1; i >= 0; i-- {
		if s.Instructions[i].Cmd == cmd {
			return s.Instructions[i], true
		}
	}
	return Instruction{}, false
}

// ArgDefaults returns the stage's ARG declarations with their defaults (nil: no default).
func (s *Stage) ArgDefaults() map[string]*string {
	out := map[string]*string{}
	for _, in := range s.Instructions {
		if in.Cmd != "ARG" {
			continue
		}
		name, def, ok := strings.Cut(in.Args, "=")
		if ok {
			d := def
			out[name] = &d
		} else {
			out[name] = nil
		}
	}
	return out
}

// ExecForm parses the JSON array form of ENTRYPOINT, CMD and HEALTHCHECK CMD. The shell form is
// returned as ["/bin/sh", "-c", text], as Docker runs it.
func ExecForm(args string) ([]string, error) {
	args = strings.TrimSpace(args)
	if strings.HasPrefix(args, "[") {
		var v []string
		if err := json.Unmarshal([]byte(args), &v); err != nil {
			return nil, fmt.Errorf("exec form %s: %w", args, err)
		}
		return v, nil
	}
	return []string{"/bin/sh", "-c", args}, nil
}

// CopyArgs splits COPY's arguments into flags (--from=...), sources and the destination. Sources
// and destination are JSON or whitespace separated; quoting in the whitespace form is not
// supported.
func CopyArgs(args string) (flags map[string]string, srcs []string, dst string, err error) {
	flags = map[string]string{}
	fields := strings.Fields(args)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(fields[0], "--"), "=")
		flags[k] = v
		fields = fields[1:]
	}
	rest := strings.Join(fields, " ")
	if strings.HasPrefix(rest, "[") {
		if err := json.Unmarshal([]byte(rest), &fields); err != nil {
			return nil, nil, "", fmt.Errorf("COPY %s: %w", args, err)
		}
	}
	if len(fields) < 2 {
		return nil, nil, "", fmt.Errorf("COPY %s: want SRC... DST", args)
	}
	return flags, fields[:len(fields)-1], fields[len(fields)-1], nil
}
