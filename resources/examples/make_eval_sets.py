"""Writes the example tasks' evaluation sets, written for Promptbank from phrase lists:
sentiment_eval.csv (120 reviews), support_triage_eval.jsonl (120 messages) and
restaurant_descriptions_eval.jsonl (100 descriptions of restaurants the training data never
names).

The training files are hand-written; these sets use other phrasings (and, for restaurants,
other names), so a prompt that only memorised its training rows scores no better than the
baselines. Run from the project root: ``python resources/examples/make_eval_sets.py``.
Seeded, so the files are the same every time.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Per kind of thing reviewed: what is reviewed, then good and bad things said about it.
REVIEWS = {
    "film": (["The film", "This movie", "The sequel", "The documentary", "The animated feature"],
             ["kept me gripped until the last scene", "had the whole cinema laughing",
              "is beautifully shot and well acted", "moved me more than I expected",
              "is the best thing I have seen this year", "has a clever, surprising plot"],
             ["dragged on for far too long", "has a plot full of holes",
              "put me to sleep halfway through", "wastes a talented cast",
              "is loud, messy and forgettable", "felt like a cheap copy of better films"]),
    "product": (["The blender", "These headphones", "The backpack", "This phone case",
                 "The kettle", "The desk lamp"],
                ["works exactly as described", "is sturdy and well made",
                 "was worth every penny", "arrived early and works perfectly",
                 "still looks new after a year of use", "does its job quietly and well"],
                ["broke after two days", "stopped working within a week",
                 "feels flimsy and cheap", "looks nothing like the photos",
                 "was a waste of money", "arrived scratched and missing a part"]),
    "restaurant": (["The pasta", "Our waiter", "The dessert", "The tasting menu",
                    "The curry"],
                   ["was perfectly cooked and generous", "made our evening special",
                    "was the highlight of our trip", "was fresh, warm and full of flavour",
                    "was friendly and attentive all night"],
                   ["arrived cold and bland", "was rude and forgot our order",
                    "was overpriced and tiny", "tasted stale and greasy",
                    "took an hour to reach our table"]),
    "hotel": (["The room", "The staff", "The breakfast", "The pool", "Our stay"],
              ["was spotless and quiet", "could not have been more helpful",
               "was relaxing from start to finish", "had a lovely view of the sea",
               "was better than the photos promised"],
              ["smelled of smoke and damp", "ignored every complaint we made",
               "was noisy all night", "was dirty and badly kept",
               "was a disappointment from check-in to check-out"]),
    "app": (["The app", "The latest update", "This game", "The new version"],
            ["is fast and easy to use", "fixed every problem I had",
             "is a joy to play every evening", "saves me hours every week"],
            ["keeps crashing on start", "drains my battery in an hour",
             "made everything slower", "is full of annoying ads"]),
}
REVIEW_ENDINGS = {
    "positive": ["", " Highly recommended.", " Five stars.", " I would buy it again."],
    "negative": ["", " Avoid.", " I want my money back.", " Never again."],
}

#: Per team: what customers write about.
TRIAGE = {
    "billing": ["I was charged twice for the same order", "my invoice shows the wrong amount",
                "I need a refund for last month", "my card was declined at checkout",
                "why did my subscription price go up", "I want a VAT receipt for my company",
                "the discount code was not applied to my bill",
                "please cancel the automatic renewal payment",
                "I was billed after I cancelled my plan", "can I pay by bank transfer instead"],
    "technical": ["the app crashes when I open a photo", "I get error 502 when saving",
                  "the page never finishes loading", "sync stopped working after the update",
                  "the printer is not detected by your software",
                  "notifications do not arrive on my phone",
                  "the upload fails at ninety percent", "the search returns no results at all",
                  "the video call keeps freezing", "the installer says a file is missing"],
    "account": ["I cannot log in since yesterday", "please change the email on my profile",
                "I want to delete my account", "my account is locked after too many tries",
                "how do I turn on two-factor login", "I lost access to my old phone number",
                "please merge my two accounts", "I want to change my username",
                "someone else may have used my login", "the verification code never arrives"],
    "other": ["do you have any open jobs", "I would like to suggest a new feature",
              "what are your office opening hours", "can we talk about a partnership",
              "I just wanted to say thank you for the great service",
              "do you sponsor local events", "where is your head office",
              "is there a student discount programme", "can I visit your factory",
              "who should I contact for a press interview"],
}
OPENINGS = ["", "Hello, ", "Hi team, ", "Good morning, ", "Quick question: "]
CLOSINGS = ["", " Thanks.", " Please help.", " Thank you in advance."]

#: Restaurants the training file never names, and the attributes it uses.
NAMES = ["Alimentum", "Browns Cambridge", "Cocum", "Midsummer House", "Taste of Cambridge",
         "The Phoenix", "The Rice Boat", "The Wrestlers", "Wildwood", "The Dumpling Tree",
         "The Olive Grove", "Travellers Rest Beefeater", "The Waterman", "Giraffe"]
FOODS = ["Chinese", "English", "French", "Indian", "Italian", "Japanese", "fast food"]
PRICES = ["cheap", "expensive", "moderately priced"]
AREAS = {"city centre": "in the city centre", "riverside": "by the riverside"}
FAMILY = {"yes": "welcomes families", "no": "is not family friendly"}


def review(rng: random.Random, label: str) -> str:
    """One short review with the sentiment of ``label``."""
    subjects, good, bad = REVIEWS[rng.choice(sorted(REVIEWS))]
    said = rng.choice(good if label == "positive" else bad)
    return f"{rng.choice(subjects)} {said}.{rng.choice(REVIEW_ENDINGS[label])}"


def message(rng: random.Random, team: str) -> str:
    """One customer message for ``team``."""
    text = rng.choice(TRIAGE[team])
    opening = rng.choice(OPENINGS)
    body = text[0].upper() + text[1:] if not opening or opening.endswith(": ") else text
    mark = "?" if body.split()[0].lower() in {"why", "how", "can", "do", "what", "where", "is",
                                              "who"} else "."
    return f"{opening}{body}{mark}{rng.choice(CLOSINGS)}"


def description(name: str, food: str, price: str, area: str, family: str) -> dict:
    """The attributes and the one sentence the restaurant task answers with."""
    article = "an" if price[0] in "aeiou" else "a"
    return {"prompt": f"name[{name}], food[{food}], priceRange[{price}], area[{area}], "
                      f"familyFriendly[{family}]",
            "completion": f"{name} is {article} {price} {food} restaurant {AREAS[area]} that "
                          f"{FAMILY[family]}."}


def distinct(make, count: int) -> list:
    """``count`` different results of ``make()`` (in the order first made)."""
    seen: dict = {}
    while len(seen) < count:
        row = make()
        seen.setdefault(json.dumps(row, sort_keys=True), row)
    return list(seen.values())


def main() -> None:
    rng = random.Random(7)
    sentiment = [(text, label) for label in ("positive", "negative")
                 for text in distinct(lambda label=label: review(rng, label), 60)]
    rng.shuffle(sentiment)
    with (HERE / "sentiment_eval.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["text", "label"])
        writer.writerows(sentiment)
    triage = [{"input": text, "output": team} for team in TRIAGE
              for text in distinct(lambda team=team: message(rng, team), 30)]
    rng.shuffle(triage)
    restaurants = distinct(lambda: description(rng.choice(NAMES), rng.choice(FOODS),
                                               rng.choice(PRICES), rng.choice(sorted(AREAS)),
                                               rng.choice(sorted(FAMILY))), 100)
    for name, rows in (("support_triage_eval.jsonl", triage),
                       ("restaurant_descriptions_eval.jsonl", restaurants)):
        (HERE / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
