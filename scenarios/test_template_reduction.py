"""What a subscription template buys: fewer events delivered, a higher sustainable offered rate."""
import pytest



def test_template_reduces_delivered_events(campaign):
    if not campaign.platform.capabilities.templates:
        pytest.skip(f"{campaign.platform.name} does not honour subscription templates")
    out = campaign.template(100.0)
    fraction = out["with"]["delivered"] / out["with"]["sent"]
    gain = (out["with"]["ndr_offered_rate_per_s"] or 0) / (out["without"]["ndr_offered_rate_per_s"] or 1)
    passed = abs(fraction - out["match_fraction_sent"]) <= 0.01 and out["with"]["unexpected"] == 0 and gain >= 3
    campaign.check("template reduction", passed, {"delivered_fraction": fraction, "ndr_gain": gain},
                   f"fraction {out['match_fraction_sent']}, gain >= 3",
                   f"template delivered {fraction:.1%} of the traffic; sustainable offered rate x{gain:.2f}")
    assert passed, f"template delivered {fraction:.1%} (want {out['match_fraction_sent']:.0%}), NDR gain x{gain:.2f}"
