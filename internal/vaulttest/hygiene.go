package vaulttest

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/cryptokeys/terraform-provider-cryptokeys/keyformat"
)

// Every server this package starts is swept for key material when it
// stops: its log (which holds the plugin's output too) and every audit log
// a test enabled in its directory. A well-formed key with a valid checksum
// or a PEM private key in any of them fails the test that started the
// server (Start) or the package's run (Shared, in Main). The sweep needs
// no list of what was issued: anything in the key format is found, so it
// covers every key every test issued on that server.

// pemPrivateKey is how every PEM private key block begins.
var pemPrivateKey = []byte("PRIVATE KEY-----")

// LeakFindings lists the key material found in the files under dir,
// naming each by file, offset and key_id, never by its secret. The plugin
// binaries (plugins/) and the TLS server's own certificate and key (tls/)
// are not swept.
func LeakFindings(dir string) ([]string, error) {
	return leakFindings(dir, func(string) bool { return false })
}

// LeakFindings is the package's LeakFindings over the server's directory,
// less the keys a test declared with KeyInPath.
func (s *Server) LeakFindings() ([]string, error) {
	return leakFindings(s.Dir, s.expectedInPath)
}

func leakFindings(dir string, allowed func(keyID string) bool) ([]string, error) {
	// Walked through an os.Root, so nothing outside dir is read, whatever
	// links the server's files hold.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var out []string
	err = fs.WalkDir(root.FS(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != "." && (d.Name() == "plugins" || d.Name() == "tls") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := root.ReadFile(path)
		if err != nil {
			return err
		}
		rel := filepath.FromSlash(path)
		for _, m := range keyformat.Find(b) {
			if m.ChecksumOK && !allowed(m.Key.KeyID) {
				out = append(out, fmt.Sprintf("%s: key %s (environment %s) in clear at byte %d", rel, m.Key.KeyID, m.Key.Environment, m.Offset))
			}
		}
		if i := bytes.Index(b, pemPrivateKey); i >= 0 {
			out = append(out, fmt.Sprintf("%s: a PEM private key at byte %d", rel, i))
		}
		return nil
	})
	return out, err
}
