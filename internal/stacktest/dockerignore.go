package stacktest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
)

// ignoreRule is one .dockerignore line.
type ignoreRule struct {
	re      *regexp.Regexp
	negated bool
}

// loadDockerignore reads the ignore file BuildKit uses for dockerfile: <Dockerfile>.dockerignore
// next to it, else .dockerignore at the context's root; none is no rules.
func loadDockerignore(dockerfile, contextDir string) ([]ignoreRule, error) {
	for _, p := range []string{dockerfile + ".dockerignore", filepath.Join(contextDir, ".dockerignore")} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return parseDockerignore(f)
	}
	return nil, nil
}

// parseDockerignore reads patterns as Docker does: comments and blank lines skipped, each pattern
// cleaned and made relative to the context, "!" re-includes, "*" and "?" within a path element,
// "**" across elements.
func parseDockerignore(r io.Reader) ([]ignoreRule, error) {
	var rules []ignoreRule
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		neg := strings.HasPrefix(line, "!")
		line = strings.TrimPrefix(line, "!")
		line = strings.TrimPrefix(path.Clean("/"+strings.TrimSpace(line)), "/")
		if line == "" {
			continue
		}
		re, err := ignoreRegexp(line)
		if err != nil {
			return nil, err
		}
		rules = append(rules, ignoreRule{re: re, negated: neg})
	}
	return rules, sc.Err()
}

func ignoreRegexp(pattern string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				i++
				if i+1 < len(pattern) && pattern[i+1] == '/' {
					i++
					b.WriteString("(.*/)?")
				} else {
					b.WriteString(".*")
				}
			} else {
				b.WriteString("[^/]*")
			}
		case '?':
			b.WriteString("[^/]")
		case '[', '\\':
			return nil, fmt.Errorf(".dockerignore pattern %q: character classes and escapes are not emulated", pattern)
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// ignored reports whether rel (slash-separated, relative to the context) is left out of the
// context: the last rule matching it or one of its parent directories decides.
func ignored(rules []ignoreRule, rel string) bool {
	out := false
	for _, r := range rules {
		for p := rel; ; p = path.Dir(p) {
			if r.re.MatchString(p) {
				out = !r.negated
				break
			}
			if !strings.Contains(p, "/") {
				break
			}
		}
	}
	return out
}

// copyContext copies the build context contextDir, less what rules leave out, to dst (regular
// files with their modes, directories and symbolic links).
func copyContext(contextDir, dst string, rules []ignoreRule) error {
	prune := true
	for _, r := range rules {
		if r.negated {
			prune = false // a re-included file may sit below an excluded directory
		}
	}
	return filepath.WalkDir(contextDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(contextDir, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		rel = filepath.ToSlash(rel)
		if ignored(rules, rel) {
			if d.IsDir() && prune {
				return filepath.SkipDir
			}
			return nil
		}
		return copyEntry(p, filepath.Join(dst, filepath.FromSlash(rel)), d)
	})
}

// copyEntry copies one file, directory (itself only) or symbolic link.
func copyEntry(src, dst string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case d.IsDir():
		return os.MkdirAll(dst, info.Mode().Perm()|0o700)
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case info.Mode().IsRegular():
		return copyFile(src, dst, info.Mode().Perm())
	}
	return nil // sockets, devices: not part of a build context
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // the umask may have narrowed it
}
