"""Writes questions.jsonl: 1,200 questions sorted by what their answer is (person, place,
number, date, definition, reason), written for Promptbank from templates and word lists.

Run from the project root: ``python resources/examples/make_questions.py``. Seeded, so the
file is the same every time. The first 1,000 rows train; the last 200 are held out.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

THINGS = ["the telephone", "the printing press", "penicillin", "the bicycle", "the radio",
          "the light bulb", "the steam engine", "the microscope", "the compass", "paper money",
          "the camera", "the thermometer", "the elevator", "the parachute", "the zipper",
          "the vaccine for polio", "the world wide web", "the first computer", "the piano",
          "the submarine", "the barometer", "the sewing machine", "the lawn mower"]
ROLES = ["wrote the first dictionary of", "painted the famous portrait in", "founded",
         "designed the main bridge of", "led the first expedition to", "discovered gold in",
         "built the oldest library in", "became the first mayor of", "mapped the coast of"]
PLACES = ["Lisbon", "the Amazon river", "Mount Kilimanjaro", "Lake Baikal", "the Sahara",
          "Kyoto", "the Andes", "Reykjavik", "the Great Barrier Reef", "Patagonia", "Vienna",
          "the Dead Sea", "Madagascar", "the Rhine", "Cairo", "Lake Titicaca", "Tasmania",
          "Nairobi", "the Gobi desert", "Quebec", "Marrakesh", "the Danube", "Hokkaido"]
CREATURES = ["the blue whale", "the snow leopard", "the emperor penguin", "the koala",
             "the giant tortoise", "the polar bear", "the monarch butterfly", "the red panda",
             "the komodo dragon", "the hummingbird", "the bald eagle", "the axolotl"]
EVENTS = ["the first moon landing", "the fall of the Berlin wall", "the opening of the Suez "
          "canal", "the first modern Olympic games", "the signing of the Magna Carta",
          "the end of the Second World War", "the first flight of the Wright brothers",
          "the invention of the telephone", "the founding of the United Nations",
          "the eruption of Mount Vesuvius", "the sinking of the Titanic",
          "the first transatlantic telegraph message"]
TERMS = ["photosynthesis", "inflation", "a sonnet", "gravity", "an isotope", "a haiku",
         "democracy", "erosion", "a metaphor", "a vaccine", "an ecosystem", "a prime number",
         "osmosis", "a budget deficit", "a tariff", "a glacier", "a fossil", "a mortgage",
         "an algorithm", "a monsoon", "a sonata", "a delta", "an enzyme", "a dividend"]
EFFECTS = ["the sky look blue", "a leaf change colour in autumn", "bread rise",
           "ice float on water", "the tide rise and fall", "a swallow fly south in winter",
           "iron rust", "the moon show phases", "an onion make people cry", "a cat purr",
           "the sea taste salty", "a volcano erupt", "a person yawn", "milk turn sour",
           "a star twinkle", "thunder follow lightning", "a plane leave a white trail"]
UNITS = [("people live in", PLACES), ("kilometres long is", ["the Nile", "the Great Wall",
         "the Danube", "the Amazon river", "the Rhine", "the Trans-Siberian railway"]),
         ("metres tall is", ["the Eiffel tower", "Mount Everest", "the Statue of Liberty",
                             "Big Ben", "the tallest redwood tree"]),
         ("legs does", ["a spider have", "an ant have", "a crab have", "an octopus have",
                        "a centipede have", "a starfish have"]),
         ("years does", [f"{c} live" for c in CREATURES]),
         ("bones are in", ["the human hand", "the human body", "a cat's tail", "the human skull"]),
         ("moons does", ["Jupiter have", "Mars have", "Saturn have", "Neptune have"])]

TEMPLATES = {
    "person": [
        "Who invented {thing}?", "Who is credited with inventing {thing}?",
        "Which scientist first described {term}?", "Who {role} {place}?",
        "Whose idea was {thing}?", "Name the person who {role} {place}.",
        "Who was the first person to cross {place}?", "Who gave {thing} its name?",
        "Which explorer first reached {place}?", "Who coined the word for {term}?",
    ],
    "place": [
        "Where is {place}?", "In which country is {place}?", "Where does {creature} live?",
        "Where was {thing} first made?", "In what city did {event} take place?",
        "Which continent is home to {creature}?", "Where can you see {place}?",
        "On which continent does {place} lie?", "Where did {event} happen?",
        "Which region has the most {creature_plain}?", "Which city hosted {event}?",
        "Where was the inventor of {thing} born?", "Where did {thing} first become popular?",
    ],
    "number": [
        "How many {unit} {target}?", "What is the number of {unit_plain} {target}?",
        "How many {unit} {target}, roughly?", "About how many {unit} {target}?",
        "How many years ago did {event} happen?", "How many people took part in {event}?",
        "How many {creature_plain} are left in the wild?", "How many times a year does {effect}?",
    ],
    "date": [
        "When did {event} happen?", "In what year did {event} take place?",
        "When was {thing} invented?", "What year was {thing} first sold?",
        "On what date did {event} begin?", "When was {place} founded?",
        "In which century was {thing} invented?", "When did people first study {term}?",
        "What year did {event} end?", "When did {thing} first reach {place}?",
        "In what year was {place} first mapped?", "When did {creature} become protected?",
    ],
    "definition": [
        "What is {term}?", "What does {term} mean?", "Define {term}.",
        "What is meant by {term}?", "Can you explain what {term} is?",
        "What is the meaning of {term}?", "Describe {term} in simple words.",
        "What exactly is {term}?", "What is {thing} used for?",
    ],
    "reason": [
        "Why does {effect}?", "What makes {effect}?", "For what reason does {effect}?",
        "Can you explain why {effect} happens?", "Why was {thing} invented?",
        "Why did {event} happen?", "Why is {creature} endangered?",
        "What is the reason {creature} is hard to find?", "Why do people visit {place}?",
        "Why is {place} so famous?", "Why did {thing} change daily life?",
        "Why is {term} important?", "Why do farmers worry about {term}?",
    ],
}


def question(label: str, rng: random.Random) -> str:
    """One question of ``label``, its slots filled at random."""
    unit, targets = rng.choice(UNITS)
    creature = rng.choice(CREATURES)
    slots = {"thing": rng.choice(THINGS), "role": rng.choice(ROLES),
             "place": rng.choice(PLACES), "creature": creature,
             "creature_plain": creature.removeprefix("the ") + "s",
             "event": rng.choice(EVENTS), "term": rng.choice(TERMS),
             "unit": unit.split()[0], "unit_plain": unit.split()[0],
             "target": " ".join([*unit.split()[1:], rng.choice(targets)]),
             "effect": rng.choice(EFFECTS)}
    return rng.choice(TEMPLATES[label]).format(**slots)


def main() -> None:
    rng = random.Random(20261205)
    labels = list(TEMPLATES)
    seen: set[str] = set()
    rows = []
    while len(rows) < 1200:
        label = labels[len(rows) % len(labels)]
        text = question(label, rng)
        if text not in seen:
            seen.add(text)
            rows.append({"input": text, "output": label})
    rng.shuffle(rows)
    out = Path(__file__).with_name("questions.jsonl")
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} questions to {out}")


if __name__ == "__main__":
    main()
