"""Writes sample.json: a small synthetic SQuAD-format corpus (invented people, towns and trades), so that
`make run` and the tests train a reader in seconds without any download. Deterministic: run it again and
the file is byte-identical (python data/qa/make_sample.py)."""

import json
import random
from pathlib import Path

FIRST = ["Anna", "Boris", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Kira", "Lukas",
         "Mira", "Nils", "Olga", "Pavel", "Rosa", "Sven", "Tara", "Umar", "Vera", "Willem", "Yara", "Zeno"]
LAST = ["Adler", "Brandt", "Castell", "Dorn", "Eller", "Falk", "Graf", "Horn", "Iversen", "Jansen", "Kern",
        "Lind", "Moser", "Nagel", "Ost", "Pohl"]
TOWNS = ["Arnhem", "Brenna", "Coldbrook", "Dunmore", "Eastwick", "Fallow", "Glenrock", "Harwick", "Ivybridge",
         "Juniper", "Kelso", "Larkfield", "Millbrook", "Northam", "Oakridge", "Pinehurst"]
TRADES = ["baker", "carpenter", "doctor", "engineer", "farmer", "painter", "pilot", "teacher", "tailor", "weaver"]
THINGS = ["apples", "boats", "clocks", "drums", "kites", "lamps", "maps", "rugs", "saddles", "violins"]
COLOURS = ["red", "blue", "green", "yellow", "white", "black"]

SENTENCES = [
    ("{name} was born in {town} in {year}.", [("Where was {name} born?", "town"), ("In which year was {name} born?", "year")]),
    ("{name} works as {a_trade} in {town2}.", [("What does {name} work as?", "trade"), ("Where does {name} work?", "town2")]),
    ("Every spring, {name} sells {thing} at the market.", [("What does {name} sell at the market?", "thing")]),
    ("The house of {name} has a {colour} door.", [("What colour is the door of {name}'s house?", "colour")]),
]


def paragraph(rng: random.Random, people: list[str]) -> dict:
    sentences, qas = [], []
    for name in people:
        facts = {"name": name, "town": rng.choice(TOWNS), "town2": rng.choice(TOWNS), "year": str(rng.randint(1901, 1999)),
                 "trade": rng.choice(TRADES), "thing": rng.choice(THINGS), "colour": rng.choice(COLOURS)}
        facts["a_trade"] = ("an " if facts["trade"][0] in "aeiou" else "a ") + facts["trade"]
        for template, questions in rng.sample(SENTENCES, 3):
            sentences.append((template.format(**facts), questions, facts))
    rng.shuffle(sentences)
    context, offset = "", 0
    for text, questions, facts in sentences:
        if context:
            context += " "
        start = len(context)
        context += text
        for question, key in questions:
            answer = facts[key]
            at = context.index(answer, start)
            qas.append({"question": question.format(**facts), "id": f"q{len(qas)}",
                        "answers": [{"text": answer, "answer_start": at}]})
    return {"context": context, "qas": qas}


def main() -> None:
    rng = random.Random(7)
    names = [f"{f} {l}" for f in FIRST for l in LAST]
    rng.shuffle(names)
    articles, used = [], 0
    for a in range(12):
        paragraphs = []
        for _ in range(4):
            paragraphs.append(paragraph(rng, names[used:used + 2]))
            used += 2
        articles.append({"title": f"Village_records_{a + 1}", "paragraphs": paragraphs})
    for a, article in enumerate(articles):  # question ids unique across the file
        for p, par in enumerate(article["paragraphs"]):
            for qa in par["qas"]:
                qa["id"] = f"a{a + 1}p{p + 1}{qa['id']}"
    out = Path(__file__).with_name("sample.json")
    out.write_text(json.dumps({"version": "1.1", "data": articles}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
