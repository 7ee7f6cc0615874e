"""Write examples/data/arithmetic.jsonl: grade-school word problems with exact integer answers.

Deterministic (a fixed seed), so the file in the repository is what this script prints:
`python examples/data/make_arithmetic.py > examples/data/arithmetic.jsonl`.
Columns: `id`, `problem` (the flows' input name), `answer` (an integer; the default target).
"""

from __future__ import annotations

import json
import random
import sys

SEED = 20261129
NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hugo", "Ines", "Jun"]
ITEMS = ["apples", "marbles", "stickers", "books", "pencils", "shells", "cards", "coins"]


def problem(rng: random.Random) -> tuple[str, int]:
    name, other = rng.sample(NAMES, 2)
    item = rng.choice(ITEMS)
    kind = rng.randrange(5)
    if kind == 0:
        a, b, c = rng.randint(5, 60), rng.randint(2, 30), rng.randint(1, 20)
        text = (
            f"{name} has {a} {item}. {other} gives {name} {b} more, and then {name} loses {c}. "
            f"How many {item} does {name} have now?"
        )
        return text, a + b - c
    if kind == 1:
        boxes, per, extra = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 9)
        text = (
            f"{name} buys {boxes} boxes of {item} with {per} {item} in each box, and finds "
            f"{extra} more at home. How many {item} does {name} have?"
        )
        return text, boxes * per + extra
    if kind == 2:
        per, groups = rng.randint(2, 9), rng.randint(2, 9)
        total = per * groups
        text = (
            f"{name} shares {total} {item} equally among {groups} friends. "
            f"How many {item} does each friend get?"
        )
        return text, per
    if kind == 3:
        price, qty, paid = rng.randint(2, 15), rng.randint(2, 6), 100
        text = (
            f"A pack of {item} costs {price} dollars. {name} buys {qty} packs and pays with a "
            f"{paid}-dollar bill. How much change does {name} get, in dollars?"
        )
        return text, paid - price * qty
    a, b = rng.randint(10, 40), rng.randint(2, 5)
    text = (
        f"{name} has {a} {item}. {other} has {b} times as many {item} as {name}. "
        f"How many {item} do they have together?"
    )
    return text, a + a * b


def main(n: int = 50) -> None:
    rng = random.Random(SEED)
    for i in range(1, n + 1):
        text, answer = problem(rng)
        sys.stdout.write(
            json.dumps({"id": f"arith-{i:03d}", "problem": text, "answer": answer}) + "\n"
        )


if __name__ == "__main__":
    main()
