package provider

import (
	"context"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timetypes/timetypes"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
)

// sameDuration keeps the prior state's spelling of a duration when the
// configuration says the same length differently ("60m" vs "1h"), so such
// an edit plans nothing. (The framework applies semantic equality to
// values a provider returns, not to plans.)
type sameDuration struct{}

func (sameDuration) Description(context.Context) string {
	return "a duration equal to the current one, however written, is no change"
}

func (m sameDuration) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (sameDuration) PlanModifyString(_ context.Context, req planmodifier.StringRequest, resp *planmodifier.StringResponse) {
	if req.StateValue.IsNull() || req.PlanValue.IsNull() || req.PlanValue.IsUnknown() {
		return
	}
	prior, err1 := time.ParseDuration(req.StateValue.ValueString())
	planned, err2 := time.ParseDuration(req.PlanValue.ValueString())
	if err1 == nil && err2 == nil && prior == planned {
		resp.PlanValue = req.StateValue
	}
}

func durationModifiers(extra ...planmodifier.String) []planmodifier.String {
	return append([]planmodifier.String{sameDuration{}}, extra...)
}

// sameSeconds reports whether two durations are the same length, however
// written; unknown or null values are never the same.
func sameSeconds(a, b timetypes.GoDuration) bool {
	if a.IsNull() || a.IsUnknown() || b.IsNull() || b.IsUnknown() {
		return false
	}
	x, d1 := a.ValueGoDuration()
	y, d2 := b.ValueGoDuration()
	return !d1.HasError() && !d2.HasError() && x == y
}
