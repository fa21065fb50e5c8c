package docstest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cryptokeys/terraform-provider-cryptokeys/internal/vaulttest"
)

// flow is one page's commands, run as written against a Vault of its own.
type flow struct {
	name string // the marker NAME
	doc  string // the page, from the repository root
	// mount: the test mounts the engine at cryptokeys/ before the commands
	// run (otherwise the page does it, through Terraform).
	mount bool
	// terraform: the page runs Terraform with the provider built in bin/,
	// found through dev_overrides (what `make install` writes).
	terraform bool
	// want: what the page promises in its prose or comments, checked
	// against everything the commands printed.
	want []*regexp.Regexp
}

var flows = []flow{
	{
		name: "getting-started", doc: "docs/guides/getting-started.md", terraform: true,
		want: []*regexp.Regexp{
			regexp.MustCompile(`Apply complete! Resources: 7 added`),
		},
	},
	{
		name: "readme-tour", doc: "README.md", mount: true,
		want: []*regexp.Regexp{
			regexp.MustCompile(`(?m)^code\s+VALID$`),
			regexp.MustCompile(`(?m)^previous_key_id\s+[0-9A-Za-z]{12}$`),
			regexp.MustCompile(`(?m)^revoked_count\s+1$`),
		},
	},
	{name: "incident-playbook", doc: "docs/guides/incident-playbook.md", mount: true},
}

// TestDocs runs the getting-started guide, the README tour and the incident
// playbook command by command, as a reader pasting them into a terminal
// would, against the real Vault server with the plugin (and, for the guide,
// the real terraform CLI with the provider built in bin/). Blocks not run
// say why in their marker. See the package comment for the markers.
func TestDocs(t *testing.T) {
	root := vaulttest.RepoRoot()
	for _, f := range flows {
		t.Run(f.name, func(t *testing.T) {
			steps := load(t, root, f)
			srv := vaulttest.Start(t)
			if f.mount {
				srv.MountAt(t, "cryptokeys")
			}
			work, home := t.TempDir(), t.TempDir()
			// The commands run from the root of a clone: bin/ and
			// examples/ are the repository's.
			for _, d := range []string{"bin", "examples"} {
				if err := os.Symlink(filepath.Join(root, d), filepath.Join(work, d)); err != nil {
					t.Fatal(err)
				}
			}
			env := append(os.Environ(), srv.Env()...)
			env = append(env,
				"HOME="+home, "NO_COLOR=1", "VAULT_FORMAT=", "VAULT_SKIP_VERIFY=", "CHECKPOINT_DISABLE=1",
				"PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
				"PLUGIN_DIR="+srv.PluginDir, "TF_CLI_ARGS=-no-color",
			)
			if f.terraform {
				if _, err := exec.LookPath("terraform"); err != nil {
					t.Fatal("terraform not on PATH")
				}
				env = append(env, "TF_CLI_CONFIG_FILE="+devOverrides(t, root))
			}
			for _, s := range steps {
				if s.Kind == File {
					appendFile(t, filepath.Join(work, s.File), s.Text)
				}
			}
			var run []Step
			for _, s := range steps {
				if s.Kind == Run {
					run = append(run, s)
				}
			}
			script, where := Script(run)
			out, err := bash(t, work, env, script)
			parts := Split(out, len(run))
			if testing.Verbose() {
				t.Logf("what the commands printed:\n%s", out)
			}
			if err != nil {
				at := "?"
				if m := regexp.MustCompile(`docs-test: failed at script line (\d+)`).FindStringSubmatch(out); m != nil {
					if n, _ := strconv.Atoi(m[1]); n >= 1 && n <= len(where) && where[n-1] != "" {
						at = where[n-1]
					}
				}
				t.Fatalf("%s: the command at %s failed: %v\n%s", f.doc, at, err, out)
			}
			for i, s := range run {
				for _, w := range s.Want {
					if missing := Matches(w.Text, parts[i]); len(missing) > 0 {
						t.Errorf("%s:%d: the output the page shows has lines the commands at line %d did not print:\n  %s\nthey printed:\n%s",
							f.doc, w.Line, s.Line, strings.Join(missing, "\n  "), parts[i])
					}
				}
			}
			for _, re := range f.want {
				if !re.MatchString(out) {
					t.Errorf("%s: the output lacks %s:\n%s", f.doc, re, out)
				}
			}
		})
	}
}

// load reads a page's blocks of one flow: the run blocks with the output
// blocks that follow each, and the file blocks.
func load(t *testing.T, root string, f flow) []Step {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, f.doc)) // #nosec G304 -- a page of this repository
	if err != nil {
		t.Fatal(err)
	}
	blocks, fences, err := Parse(f.doc, src)
	if err != nil {
		t.Fatal(err)
	}
	if lines := Unmarked(fences); len(lines) > 0 {
		t.Fatalf("%s: shell blocks at lines %v have no docs-test marker (run them, or skip them with a reason)", f.doc, lines)
	}
	var steps []Step
	for _, b := range blocks {
		if b.Name != f.name {
			continue
		}
		if err := SkipsUsed(b); err != nil {
			t.Fatal(err)
		}
		switch b.Kind {
		case Output:
			if len(steps) == 0 || steps[len(steps)-1].Kind != Run {
				t.Fatalf("%s:%d: an output block must follow a run block", f.doc, b.Line)
			}
			steps[len(steps)-1].Want = append(steps[len(steps)-1].Want, b)
		case Skip:
			t.Logf("%s:%d: not run: %s", f.doc, b.Line, b.Reason)
		default:
			if len(b.Skip) > 0 {
				t.Logf("%s:%d: lines starting with %q not run: %s", f.doc, b.Line, b.Skip, b.Reason)
			}
			steps = append(steps, Step{Block: b})
		}
	}
	if len(steps) == 0 {
		t.Fatalf("%s: no docs-test blocks named %q", f.doc, f.name)
	}
	return steps
}

// devOverrides writes the CLI configuration `make install` writes: the
// provider in bin/, found without a registry.
func devOverrides(t *testing.T, root string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "bin", "terraform-provider-cryptokeys")); err != nil {
		t.Fatal("bin/terraform-provider-cryptokeys missing: run `make build`")
	}
	path := filepath.Join(t.TempDir(), "terraform.tfrc")
	bin := filepath.Join(root, "bin")
	rc := fmt.Sprintf("provider_installation {\n  dev_overrides {\n    %q = %q\n    %q = %q\n  }\n  direct {}\n}\n",
		"registry.terraform.io/cryptokeys/cryptokeys", bin, "registry.opentofu.org/cryptokeys/cryptokeys", bin)
	if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func appendFile(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600) // #nosec G304 -- the test's own work dir
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(text + "\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// bash runs the script in dir; the only input it gets is "yes" for a
// Terraform approval prompt.
func bash(t *testing.T, dir string, env []string, script string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docs.sh")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", path) // #nosec G204 -- the pages' own commands
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader("yes\n")
	out, err := cmd.CombinedOutput()
	return string(out), err
}
