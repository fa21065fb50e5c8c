package provider

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// Every RPC of tfprotov6.ProviderServer is wrapped by redactingServer
// itself (nothing is promoted from an embedded server), and the response of
// each is one whose diagnostics the wrapper redacts. A method added
// upstream either fails to compile in redact.go or fails here.
func TestRedactingServer_wrapsEveryMethod(t *testing.T) {
	st := reflect.TypeOf(redactingServer{})
	for i := 0; i < st.NumField(); i++ {
		if st.Field(i).Anonymous {
			t.Fatalf("redactingServer embeds %s: its methods would pass through unredacted", st.Field(i).Type)
		}
	}
	key := "ck_prod_" + strings.Repeat("A", 50)
	iface := reflect.TypeOf((*tfprotov6.ProviderServer)(nil)).Elem()
	for i := 0; i < iface.NumMethod(); i++ {
		m := iface.Method(i)
		if _, ok := st.MethodByName(m.Name); !ok {
			t.Errorf("%s is not wrapped", m.Name)
			continue
		}
		resp := reflect.New(m.Type.Out(0).Elem()).Elem()
		diags := resp.FieldByName("Diagnostics")
		fnErr := resp.FieldByName("Error")
		switch {
		case diags.IsValid() && diags.Type() == reflect.TypeOf([]*tfprotov6.Diagnostic(nil)):
			d := &tfprotov6.Diagnostic{Summary: "bad " + key, Detail: key}
			diags.Set(reflect.ValueOf([]*tfprotov6.Diagnostic{d}))
			redactResponse(resp)
			if strings.Contains(d.Summary+d.Detail, key) {
				t.Errorf("%s: diagnostics not redacted: %q %q", m.Name, d.Summary, d.Detail)
			}
		case fnErr.IsValid() && fnErr.Type() == reflect.TypeOf((*tfprotov6.FunctionError)(nil)):
			fe := &tfprotov6.FunctionError{Text: key}
			fnErr.Set(reflect.ValueOf(fe))
			redactResponse(resp)
			if strings.Contains(fe.Text, key) {
				t.Errorf("%s: function error not redacted", m.Name)
			}
		case m.Name == "StopProvider":
			// Its Error is a plain string the provider never fills from
			// user input.
		default:
			t.Errorf("%s: response %s has no Diagnostics this wrapper knows how to redact", m.Name, resp.Type())
		}
	}
}
