package docstest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

const page = "intro\n" +
	"<!-- docs-test: f skip=\"make dev\" reason=\"the test has its own Vault\" -->\n" +
	"```sh\n" +
	"make dev\n" +
	"KEY=$(vault read -field=api_key cryptokeys/creds/r)\n" +
	"```\n" +
	"<!-- docs-test: f output -->\n" +
	"```\n" +
	"code    VALID\n" +
	"...\n" +
	"```\n" +
	"- item\n" +
	"  <!-- docs-test: f file=\"main.tf\" -->\n" +
	"  ```terraform\n" +
	"  provider \"cryptokeys\" {}\n" +
	"  ```\n" +
	"<!-- docs-test: f skip reason=\"needs /etc\" -->\n" +
	"```shell\n" +
	"cp x /etc\n" +
	"```\n" +
	"```shell\n" +
	"echo unmarked\n" +
	"```\n"

func TestParse(t *testing.T) {
	blocks, fences, err := Parse("p.md", []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, b := range blocks {
		kinds = append(kinds, b.Kind)
	}
	if want := []string{Run, Output, File, Skip}; !reflect.DeepEqual(kinds, want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
	if b := blocks[0]; b.Line != 4 || !reflect.DeepEqual(b.Skip, []string{"make dev"}) || !strings.HasPrefix(b.Text, "make dev\nKEY=") {
		t.Errorf("run block: %+v", b)
	}
	if b := blocks[2]; b.File != "main.tf" || b.Text != "provider \"cryptokeys\" {}\n" {
		t.Errorf("file block (its list indentation should be gone): %+v", b)
	}
	if got := Unmarked(fences); !reflect.DeepEqual(got, []int{21}) {
		t.Errorf("unmarked shell fences at %v, want [21]", got)
	}
	for _, bad := range []string{
		"<!-- docs-test: f skip -->\n```sh\nx\n```\n",           // a skip without a reason
		"<!-- docs-test: f -->\ntext\n```sh\nx\n```\n",          // not directly above a fence
		"<!-- docs-test: f colour=\"red\" -->\n```sh\nx\n```\n", // unknown attribute
		"<!-- docs-test f -->\n```sh\nx\n```\n",                 // malformed marker
		"<!-- docs-test: f -->\n```sh\nx\n",                     // unterminated
	} {
		if _, _, err := Parse("bad.md", []byte(bad)); err == nil {
			t.Errorf("Parse accepted %q", bad)
		}
	}
}

func TestScriptAndSplit(t *testing.T) {
	blocks, _, err := Parse("p.md", []byte(page))
	if err != nil {
		t.Fatal(err)
	}
	script, where := Script([]Step{{Block: blocks[0]}})
	if strings.Contains(script, "\nmake dev\n") || !strings.Contains(script, "# (skipped by the docs test) make dev") {
		t.Errorf("the skipped line is still run:\n%s", script)
	}
	lines := strings.Split(script, "\n")
	for i, at := range where {
		if strings.HasPrefix(lines[i], "KEY=") && at != "p.md:5" {
			t.Errorf("KEY= maps to %q, want p.md:5", at)
		}
	}
	if err := SkipsUsed(Block{Doc: "p.md", Text: "vault read x\n", Skip: []string{"make dev"}}); err == nil {
		t.Error("a skip that matches no line passed")
	}
	out := "noise\n" + Separator(0) + "\nfirst\n" + Separator(1) + "\nsecond\n" + Separator(2) + "\n"
	if got := Split(out, 2); !reflect.DeepEqual(got, []string{"first\n", "second\n"}) {
		t.Errorf("Split: %q", got)
	}
}

func TestMatches(t *testing.T) {
	sample := "Key  Value\ncode    VALID\nkey_id  7Fq2LxR9aTbZ\n...\n"
	got := "Key Value\ncode VALID\nexpires_at x\nkey_id   Ab3dEf6hIj9L\n"
	if m := Matches(sample, got); len(m) != 0 {
		t.Errorf("missing %q", m)
	}
	if m := Matches(sample, strings.Replace(got, "VALID", "REVOKED", 1)); !reflect.DeepEqual(m, []string{"code    VALID"}) {
		t.Errorf("missing %q, want the code line", m)
	}
	if m := Matches("key_id 7Fq2LxR9aTbZ", "key_id short"); len(m) != 1 {
		t.Error("the sample key_id matched a string that is no key_id")
	}
}

// TestPagesMarked checks, without a server, that the pages TestDocs runs
// parse and that none of their shell blocks lacks a marker.
func TestPagesMarked(t *testing.T) {
	root := vaulttest.RepoRoot()
	for _, f := range flows {
		src, err := os.ReadFile(filepath.Join(root, f.doc)) // #nosec G304 -- a page of this repository
		if err != nil {
			t.Fatal(err)
		}
		blocks, fences, err := Parse(f.doc, src)
		if err != nil {
			t.Fatal(err)
		}
		if lines := Unmarked(fences); len(lines) > 0 {
			t.Errorf("%s: shell blocks at lines %v have no docs-test marker", f.doc, lines)
		}
		runs := 0
		for _, b := range blocks {
			if b.Name != f.name {
				t.Errorf("%s:%d: marker names %q, the page's flow is %q", f.doc, b.Line, b.Name, f.name)
			}
			if err := SkipsUsed(b); err != nil {
				t.Error(err)
			}
			if b.Kind == Run {
				runs++
			}
		}
		if runs == 0 {
			t.Errorf("%s: no run blocks", f.doc)
		}
	}
}
