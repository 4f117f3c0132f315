"""Mean ± sample std over seeds of real_ab.sh's lines, per dataset and arm.

  python summarize.py LOG     (lines "DATASET ARM seed N {json} | …")
"""

import json
import re
import statistics
import sys
from collections import defaultdict

LINE = re.compile(r"^(\S+) (\S+) seed (\d+) (\{[^}]*\})")


def main(path):
    rows = defaultdict(dict)
    for line in open(path):
        m = LINE.match(line)
        if m:
            ds, arm, seed, scores = m.groups()
            # a later line for the same seed replaces an earlier one
            rows[(ds, arm)][seed] = json.loads(scores)
    print(f"{'dataset':8} {'arm':10} {'seeds':6} {'AP50':>15} {'AP':>15} {'SEG':>15}")
    for (ds, arm), by_seed in rows.items():
        cells = []
        for key in ["ap50", "ap", "seg"]:
            v = [s[key] for s in by_seed.values()]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.mean(v):.3f} ± {sd:.3f}")
        seeds = ",".join(sorted(by_seed))
        print(f"{ds:8} {arm:10} {seeds:6} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15}")


if __name__ == "__main__":
    main(*sys.argv[1:])
