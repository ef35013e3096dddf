"""What normalising a phone number costs per row: `e164` (and the row transform of a Meta sync
mapping email + phone) over 100,000 varied numbers, the way a first load of an audience meets
them: mostly distinct, written in a mix of international, national and trunk-prefixed forms.

    python bench/phone_normalisation.py [--numbers 100000] [--repeat 3] [--duplicates 0.0]

Prints µs per phone (best of --repeat, CPU time of this process). `--duplicates 0.3` makes 30%
of the inputs repeat earlier ones (shared office numbers, a re-run in the same process), which
is where the parse cache helps; distinct numbers are what a first load is made of.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import phonenumbers

from activation.destinations import identifiers
from activation.destinations.identifiers import META, e164

REGIONS = ["US", "GB", "FR", "DE", "IN", "BR", "AU", "JP", "ES", "IT", "NL", "MX", "CA", "SE", "PL"]


def varied_numbers(n: int, duplicates: float, seed: int = 7) -> list[tuple[str, str]]:
    """(text, the row's country): a national number drawn from each region's example, its last
    digits randomised, then written as E.164, spaced international, national, 00-prefixed or
    with the trunk "(0)" kept after the country code."""
    rng = random.Random(seed)
    examples = {r: phonenumbers.example_number(r) for r in REGIONS}
    out: list[tuple[str, str]] = []
    for _ in range(n):
        if out and rng.random() < duplicates:
            out.append(rng.choice(out))
            continue
        region = rng.choice(REGIONS)
        example = examples[region]
        national = str(example.national_number)
        national = national[:-5] + f"{rng.randrange(100000):05d}"
        number = phonenumbers.parse(f"+{example.country_code}{national}")
        form = rng.random()
        if form < 0.4:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        elif form < 0.7:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        elif form < 0.9:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        elif form < 0.95:
            text = f"00{example.country_code} {national}"
        else:
            text = f"+{example.country_code} (0){national}"
        out.append((text, region))
    return out


def per_item_us(fn: Callable[[Any], object], items: list[Any], repeat: int) -> float:
    """CPU µs per item of `fn` over `items`, best of `repeat`, each round with a cold cache."""
    best = float("inf")
    for _ in range(repeat):
        cache = getattr(identifiers, "_e164_cached", None)  # (absent before the cache: runs on older code too)
        if cache is not None:
            cache.cache_clear()  # each round starts cold, as a fresh process does
        start = time.process_time()
        for item in items:
            try:  # noqa: SIM105 - cheaper than contextlib.suppress in the timed loop
                fn(item)
            except identifiers.InvalidIdentifier:
                pass
        best = min(best, time.process_time() - start)
    return best / len(items) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--numbers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duplicates", type=float, default=0.0)
    args = parser.parse_args()
    numbers = varied_numbers(args.numbers, args.duplicates)
    apply = META.transform(["email", "phone", "country"])
    rows = [{"email": f"person.{i}@example.com", "phone": text, "country": region} for i, (text, region) in enumerate(numbers)]
    invalid = 0
    for text, region in numbers:
        try:
            e164(text, region)
        except identifiers.InvalidIdentifier:
            invalid += 1
    print(
        f"{args.numbers:,} numbers ({args.duplicates:.0%} repeats), {invalid:,} refused as impossible; "
        f"phonenumbers {phonenumbers.__version__}"
    )
    print(f"e164: {per_item_us(lambda n: e164(*n), numbers, args.repeat):.1f} µs per phone (best of {args.repeat})")
    print(f"Meta row transform (email + phone + country, normalised and hashed): {per_item_us(apply, rows, args.repeat):.1f} µs per row")


if __name__ == "__main__":
    main()
