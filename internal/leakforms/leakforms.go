// Package leakforms lists the ways a leaked key shows up in logs, pastes
// and pages: glued to an escape (JSON \n, access-log %20, HTML &quot;) or
// with some of its own characters escaped. Tests of every place that finds
// keys (keyformat.Find, the engine's revoke/leaked, cryptokeys scan, the
// gateway's leak receivers) run the same table, so they behave the same.
package leakforms

import (
	"fmt"
	"strings"
)

// Form is one way of writing a key into a text.
type Form struct {
	Name string
	// Write returns a line of text holding key in this form.
	Write func(key string) string
	// Glue is true when the key itself is written as is, only glued to
	// its neighbours: a look-alike written this way is counted (once) as
	// one. Keys with escaped characters are found only in the decoded
	// text, where look-alikes are not counted.
	Glue bool
}

func glued(name, left, right string) Form {
	return Form{Name: name, Glue: true, Write: func(k string) string {
		return `{"level":"warn","msg":"auth header` + left + k + right + `end","n":1}`
	}}
}

func encoded(name string, enc func(string) string) Form {
	return Form{Name: name, Write: func(k string) string {
		return `10.0.0.7 - - "GET /v1/ticker?sym=BTC&api_key=` + enc(k) + `&x=1 HTTP/1.1" 200 512`
	}}
}

func every(format string) func(string) string {
	return func(k string) string {
		var b strings.Builder
		for i := 0; i < len(k); i++ {
			fmt.Fprintf(&b, format, k[i])
		}
		return b.String()
	}
}

func underscores(as string) func(string) string {
	return func(k string) string { return strings.ReplaceAll(k, "_", as) }
}

// All is the table: at least the forms issue 18 names, and their kin.
var All = []Form{
	glued(`JSON \n`, `\n`, `\n`),
	glued(`JSON \t`, `\t`, `\t`),
	glued(`JSON \r\n`, `\r\n`, `\r\n`),
	glued(`JSON \"`, `:\"`, `\"`),
	glued(`JSON \u0022`, `\u0022`, `\u0022`),
	glued(`C \x22`, `\x22`, `\x22`),
	glued(`URL %20`, "%20", "%20"),
	glued(`URL %3D`, "api_key%3D", "%26"),
	glued(`URL %22`, "%22", "%22"),
	glued(`URL %0A`, "%0A", "%0A"),
	glued(`URL twice %2522`, "%2522", "%2522"),
	glued(`form +`, "Bearer+", "+x"),
	glued(`HTML &quot;`, "&quot;", "&quot;"),
	glued(`HTML &#34;`, "&#34;", "&#34;"),
	{Name: "glued to letters", Write: glued("", "Bearerxyz", "Zq").Write}, // no word boundary: look-alikes not counted
	encoded(`URL %5F for _`, underscores("%5F")),
	encoded(`URL twice %255F for _`, underscores("%255F")),
	encoded(`URL every byte %XX`, every("%%%02X")),
	encoded(`JSON \u005f for _`, underscores(`\u005f`)),
	encoded(`JSON every byte \u00XX`, every(`\u%04x`)),
	encoded(`HTML &#95; for _`, underscores("&#95;")),
	encoded(`HTML &#x5F; for _`, underscores("&#x5F;")),
	encoded(`HTML &lowbar; for _`, underscores("&lowbar;")),
}
