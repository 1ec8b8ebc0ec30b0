// Package docs holds Ballast's documentation; its test checks that the
// README and the pages here point only at things in this repository.
package docs

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoPath matches a path into the repository's fixed top-level folders as
// the docs write them: `pool/frontend`, `deploy/systemd/`, `docs/architecture.md`.
var repoPath = regexp.MustCompile("`((?:pool|driver|csi|workloads|cmd|deploy|docs)/[A-Za-z0-9_./-]*)`")

// goSymbol is the exported identifier in a Go reference like pool/block.Device.
var goSymbol = regexp.MustCompile(`\.[A-Z][A-Za-z0-9_]*$`)

// TestPathsExist: every repository path the README and docs/*.md name
// exists, so the docs do not describe files that were moved or never made.
func TestPathsExist(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	pages = append(pages, "../README.md")
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range repoPath.FindAllStringSubmatch(string(b), -1) {
			p := strings.TrimSuffix(m[1], "/")
			p = goSymbol.ReplaceAllString(p, "") // pool/block.Device: the package pool/block
			if _, err := os.Stat(filepath.Join("..", p)); err != nil {
				t.Errorf("%s names %s, which is not in the repository", page, m[1])
			}
			checked++
		}
	}
	if checked < 10 {
		t.Fatalf("only %d repository paths found in %v; is the pattern still right?", checked, pages)
	}
}

// TestNoOutsideDesignDoc: nothing in the repository sends a reader to a
// design document outside it; docs/architecture.md is the one.
func TestNoOutsideDesignDoc(t *testing.T) {
	out, err := exec.Command("git", "-C", "..", "grep", "-n", "-e", "DESIGN.md", "-e", "shared/DESIGN", "--", ".", ":!docs/docs_test.go").CombinedOutput()
	if err != nil {
		if exit, ok := err.(*exec.ExitError); ok && exit.ExitCode() == 1 {
			return // git grep found nothing
		}
		t.Skipf("git grep unavailable here: %v: %s", err, out)
	}
	t.Errorf("the repository cites a design document outside it (use docs/architecture.md):\n%s", out)
}
