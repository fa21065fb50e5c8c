package provider

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

func TestSameDurationKeepsTheStateSpelling(t *testing.T) {
	cases := []struct {
		state, plan types.String
		want        types.String
	}{
		{types.StringValue("1h"), types.StringValue("60m"), types.StringValue("1h")},
		{types.StringValue("720h"), types.StringValue("30h30m"), types.StringValue("30h30m")},
		{types.StringValue("90s"), types.StringValue("1m30s"), types.StringValue("90s")},
		{types.StringNull(), types.StringValue("1h"), types.StringValue("1h")},
		{types.StringValue("1h"), types.StringNull(), types.StringNull()},
		{types.StringValue("1h"), types.StringUnknown(), types.StringUnknown()},
	}
	for _, c := range cases {
		resp := &planmodifier.StringResponse{PlanValue: c.plan}
		sameDuration{}.PlanModifyString(context.Background(), planmodifier.StringRequest{StateValue: c.state, PlanValue: c.plan}, resp)
		if !resp.PlanValue.Equal(c.want) {
			t.Errorf("state %s, plan %s: planned %s, want %s", c.state, c.plan, resp.PlanValue, c.want)
		}
	}
}

func TestDurationValueFromEngineSeconds(t *testing.T) {
	prior := timetypes.NewGoDurationValueFromStringMust("60m")
	if got := durationValue(3600, prior); got.ValueString() != "60m" {
		t.Errorf("equal length must keep the configured spelling, got %s", got)
	}
	if got := durationValue(7200, prior); got.ValueString() != "2h" {
		t.Errorf("drift must read back as the engine's value, got %s", got)
	}
	if got := durationValue(0, timetypes.NewGoDurationNull()); !got.IsNull() {
		t.Errorf("unset must stay null, got %s", got)
	}
	if got := durationValue(0, prior); got.ValueString() != "0s" {
		t.Errorf("cleared outside Terraform must show as 0s, got %s", got)
	}
	// The framework's own semantic equality agrees, so a provider-returned
	// "1h" against a planned "60m" is no inconsistency.
	eq, d := timetypes.NewGoDurationValueFromStringMust("1h").StringSemanticEquals(context.Background(), prior)
	if d.HasError() || !eq {
		t.Error("timetypes does not treat 1h and 60m as equal")
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 90 * time.Second: "1m30s", 720 * time.Hour: "720h", 0: "0s"} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
