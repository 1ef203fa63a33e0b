"""What money went where: `bizsent costs`, the API ledger's spend by provider, model, job and day beside each
model's price, and what RunPod pods cost (billed by the hour, so a line of their own)."""

from __future__ import annotations

import sqlite_utils
from bizsent.core.config import Settings
from bizsent.core.label import ledger
from bizsent.core.label.budget import money
from bizsent.core.pods import records as pod_records


def render_costs(db: sqlite_utils.Database, settings: Settings | None = None) -> str:
    """Spend from the ledger by provider, model, job and day, and the pods' spend; with `settings`, each model's
    price (the same [prices] table the estimates and the ledger use) beside what it cost."""
    out = [f"total spend recorded: ${ledger.total_usd(db):.4f}"]
    pods, pods_usd, live, live_usd = pod_records.spend(db)
    if pods:
        # Pods are billed by the hour, not per request: their own line, beside the API ledger's total.
        still = f"; {live} still running, ${live_usd:.4f} so far (as of `bizsent pods list`)" if live else ""
        out.append(f"pods (RunPod): ${pods_usd:.4f} over {pods} pod(s){still}")
    unknown, unknown_usd = ledger.maybe_paid(db)
    if unknown:
        # Sent, but no answer was recorded (killed mid-request, timed out, connection lost): the provider may
        # have billed them, and each was sent again, so each may have been paid twice.
        out.append(f"maybe paid: {unknown} request(s) of unknown fate (about {money(unknown_usd)}), not in the"
                   " total above; the caps count them")
    for column in ("provider", "model", "job", "day"):
        rows_ = ledger.spend_by(db, column)
        out.append("")
        out.append(f"by {column}:")
        priced = column == "model" and settings is not None
        out.append(f"  {column:<36} {'calls':>7} {'ok':>7} {'tokens in':>12} {'tokens out':>11} {'USD':>10}"
                   f" {'maybe paid':>16}" + ("  price in/out per Mtok (batch x)" if priced else ""))
        for r in rows_:
            line = (f"  {str(r[column])[:36]:<36} {r['calls']:>7} {r['ok']:>7} {r['tokens_in']:>12,}"
                    f" {r['tokens_out']:>11,} {r['usd']:>10.4f} {r['interrupted']:>16}")
            if priced:
                assert settings is not None
                price = settings.prices.get(str(r[column]).split(" ", 1)[-1])
                line += (f"  ${price.input_per_mtok:.2f}/${price.output_per_mtok:.2f} (x{price.batch_discount:g})"
                         if price else "  no price known")
            out.append(line)
    return "\n".join(out)
