"""Printed at the end of `make synth`: where the Terraform is, and what to do next."""

from __future__ import annotations

import sys
from pathlib import Path


def main(outdir: str) -> int:
    stacks = sorted(p.parent.name for p in Path(outdir).glob("stacks/*/cdk.tf.json"))
    if not stacks:
        print(f"error: no synthesized stacks under {outdir}/stacks", file=sys.stderr)
        return 1
    print(f"\nSynthesized {len(stacks)} stacks ({', '.join(stacks)}):")
    for name in stacks:
        print(f"  {outdir}/stacks/{name}/cdk.tf.json")
    print(
        "\nNext:\n"
        "  review the JSON above (or `node_modules/.bin/cdktf diff` with GCP credentials),\n"
        "  then deploy, the cluster first:\n"
        "    export TF_VAR_project_id=my-project TF_VAR_allowed_source_ranges='[\"203.0.113.0/24\"]'\n"
        "    export TF_VAR_desktop_password='at least 12 characters'\n"
        "    node_modules/.bin/cdktf deploy cluster desktop\n"
        "  `node_modules/.bin/cdktf output desktop` prints the desktop URL."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "cdktf.out"))
