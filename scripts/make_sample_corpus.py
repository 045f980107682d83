"""Writes sample_corpus/: the small mixed-format corpus `make dev` uploads to its local S3.

Run once by hand (needs reportlab, a dev dependency) when the texts change; the output is
committed so nobody needs to run it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

TOPICS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "volcanoes": (
        "How volcanoes form",
        [
            (
                "Magma and plates",
                "Volcanoes form where molten rock called magma reaches the surface. Most of them sit on the boundaries of tectonic plates, where one plate dives beneath another in a subduction zone, or where plates pull apart at mid-ocean ridges and magma wells up to fill the gap.",
            ),
            (
                "Eruption styles",
                "Runny basaltic lava, like that of Hawaii, erupts gently and builds broad shield volcanoes. Sticky, gas-rich andesitic and rhyolitic magma traps pressure until it explodes, throwing ash columns kilometres high and sending pyroclastic flows racing down the slopes of steep stratovolcanoes.",
            ),
            (
                "Monitoring",
                "Volcanologists watch for swarms of small earthquakes, swelling of the ground measured by GPS and satellite radar, and changes in the sulfur dioxide a volcano breathes out. Together these signals give days or weeks of warning before many eruptions.",
            ),
        ],
    ),
    "sourdough": (
        "Baking sourdough bread",
        [
            (
                "The starter",
                "A sourdough starter is a culture of wild yeast and lactic acid bacteria living in a paste of flour and water. Fed daily, it doubles in a few hours and gives bread both its rise and its tangy flavour.",
            ),
            (
                "Bulk fermentation",
                "After mixing flour, water, salt and starter, the dough ferments for four to six hours at room temperature. Stretch-and-fold sets every half hour build gluten strength without kneading, and the dough should grow by about half before shaping.",
            ),
            (
                "Baking",
                "Bake the loaf in a preheated Dutch oven at 250 degrees Celsius with the lid on for twenty minutes, so steam keeps the crust soft while the loaf springs up, then uncover it to brown the crust deeply.",
            ),
        ],
    ),
    "chess-openings": (
        "Chess openings for beginners",
        [
            (
                "Principles",
                "Good openings follow a few principles: fight for the centre with pawns, develop knights before bishops, castle early to keep the king safe, and avoid moving the same piece twice before the other pieces are out.",
            ),
            (
                "The Italian Game",
                "The Italian Game begins 1.e4 e5 2.Nf3 Nc6 3.Bc4, aiming the bishop at the weak f7 square. It leads to open positions where quick development and tactics decide the game.",
            ),
            (
                "The Queen's Gambit",
                "In the Queen's Gambit, 1.d4 d5 2.c4, White offers a pawn to pull Black's d-pawn away from the centre. Declining with 2...e6 is solid; accepting it gives White a strong centre in return.",
            ),
        ],
    ),
    "honeybees": (
        "The life of honeybees",
        [
            (
                "Castes",
                "A honeybee colony has one queen that lays up to two thousand eggs a day, tens of thousands of female worker bees, and in summer a few hundred male drones whose only task is to mate with young queens.",
            ),
            (
                "The waggle dance",
                "A forager that finds rich flowers returns to the hive and performs a waggle dance. The angle of the dance relative to vertical shows the direction of the food relative to the sun, and the length of the waggle run encodes the distance.",
            ),
            (
                "Winter",
                "Honeybees survive winter by clustering around the queen and shivering their flight muscles to keep the centre of the cluster near 35 degrees Celsius, living on the honey they stored during summer.",
            ),
        ],
    ),
    "black-holes": (
        "Black holes",
        [
            (
                "Event horizon",
                "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can escape once it crosses the event horizon. Its size scales with its mass: the Schwarzschild radius of the Sun would be about three kilometres.",
            ),
            (
                "Imaging",
                "In 2019 the Event Horizon Telescope, a planet-sized array of radio dishes, produced the first image of a black hole's shadow, at the centre of galaxy M87, surrounded by a glowing ring of superheated gas.",
            ),
            (
                "Hawking radiation",
                "Stephen Hawking showed that quantum effects near the horizon make black holes emit faint thermal radiation, so isolated black holes slowly lose mass and, over unimaginably long times, evaporate.",
            ),
        ],
    ),
    "composting": (
        "Composting at home",
        [
            (
                "Greens and browns",
                "A healthy compost pile mixes nitrogen-rich greens, such as vegetable scraps and grass clippings, with carbon-rich browns, such as dry leaves, cardboard and straw, in roughly equal volumes.",
            ),
            (
                "Air and water",
                "Microbes that break down organic matter need oxygen and moisture. Turn the pile every week or two and keep it as damp as a wrung-out sponge; a smelly pile is usually too wet or lacks air.",
            ),
            (
                "Finished compost",
                "After two to six months the pile turns into dark, crumbly compost that smells of forest soil. Sieve out unfinished pieces and spread it on garden beds to feed soil life and hold water.",
            ),
        ],
    ),
    "marathon-training": (
        "Training for a first marathon",
        [
            (
                "Base mileage",
                "Before starting a marathon plan, build a base of three to four easy runs a week for a couple of months. Most injuries in new runners come from increasing weekly distance too fast.",
            ),
            (
                "The long run",
                "The weekly long run is the core of marathon training. It grows gradually to about 30 to 32 kilometres three weeks before race day and should be run at a relaxed, conversational pace.",
            ),
            (
                "Tapering",
                "In the final two to three weeks, cut weekly volume by a third and then by half while keeping a little speed work, so the legs arrive at the start line rested but sharp.",
            ),
        ],
    ),
    "photosynthesis": (
        "Photosynthesis",
        [
            (
                "Light reactions",
                "In the thylakoid membranes of chloroplasts, chlorophyll absorbs light and uses its energy to split water, releasing oxygen and producing the energy carriers ATP and NADPH.",
            ),
            (
                "The Calvin cycle",
                "In the stroma, the enzyme RuBisCO fixes carbon dioxide from the air into sugars, powered by the ATP and NADPH made by the light reactions. RuBisCO is probably the most abundant protein on Earth.",
            ),
            (
                "C4 and CAM plants",
                "Maize and sugarcane use C4 photosynthesis, concentrating carbon dioxide around RuBisCO to avoid wasteful photorespiration in hot climates, while cacti open their pores only at night in CAM photosynthesis to save water.",
            ),
        ],
    ),
    "roman-aqueducts": (
        "Roman aqueducts",
        [
            (
                "Engineering",
                "Roman aqueducts carried water to cities over tens of kilometres using gravity alone. Engineers kept a steady, gentle gradient, sometimes only a few centimetres per hundred metres, using tunnels, siphons and arched bridges.",
            ),
            (
                "Pont du Gard",
                "The Pont du Gard in southern France is a three-tiered aqueduct bridge almost fifty metres high, built in the first century without mortar and still standing today.",
            ),
            (
                "Water in the city",
                "Water arriving in Rome flowed into distribution tanks, then through lead pipes to public fountains, baths and the houses of wealthy citizens, with public fountains served first in times of shortage.",
            ),
        ],
    ),
    "coffee-brewing": (
        "Brewing better coffee",
        [
            (
                "Grind size",
                "Grind size controls extraction: too fine and coffee tastes bitter and harsh, too coarse and it tastes sour and thin. Espresso needs a fine grind, pour-over a medium grind and French press a coarse one.",
            ),
            (
                "Ratio and water",
                "A good starting ratio is one gram of coffee to sixteen grams of water, with water just off the boil at about 93 degrees Celsius. Soft, filtered water lets the flavours of the beans come through.",
            ),
            (
                "Freshness",
                "Coffee beans are best one to four weeks after roasting. Grind them right before brewing, because ground coffee loses its aromatic compounds within minutes.",
            ),
        ],
    ),
    "vector-databases": (
        "Vector databases for retrieval",
        [
            (
                "Embeddings",
                "An embedding model maps text to a dense vector so that passages with similar meaning lie close together. Retrieval-augmented generation embeds the user's question and fetches the nearest document chunks to ground the answer.",
            ),
            (
                "Approximate search",
                "Vector databases such as Qdrant build an HNSW graph over the vectors, which finds near neighbours in logarithmic time instead of comparing the query against every stored vector.",
            ),
            (
                "Payload filters",
                "Each point in Qdrant carries a JSON payload. Indexing payload fields like a document id lets the database filter, update and delete all chunks of one document quickly.",
            ),
        ],
    ),
    "tides": (
        "What causes ocean tides",
        [
            (
                "The Moon's pull",
                "Tides are caused mainly by the Moon's gravity pulling unevenly on the Earth: the ocean facing the Moon is pulled most strongly, and the ocean on the far side least, producing two bulges of water.",
            ),
            (
                "Spring and neap tides",
                "When the Sun and Moon line up at new and full moon their pulls add together, giving large spring tides; at the quarter moons they partly cancel, giving small neap tides.",
            ),
            (
                "Local effects",
                "The shape of coastlines and the depth of the sea floor amplify tides in some places: the Bay of Fundy in Canada has a tidal range of up to sixteen metres.",
            ),
        ],
    ),
    "origami": (
        "Getting started with origami",
        [
            (
                "Paper",
                "Origami uses square sheets of thin, crisp paper. Kami paper, coloured on one side, is cheap and forgiving for beginners, while washi paper is stronger and suits complex models.",
            ),
            (
                "Basic folds",
                "Nearly every model is built from a few folds: the valley fold, the mountain fold, the squash fold and the reverse fold. Crease every fold sharply with a fingernail for precise results.",
            ),
            (
                "The crane",
                "The traditional paper crane starts from a square base, then uses petal folds to form the long neck and tail. In Japan, folding a thousand cranes is said to grant a wish.",
            ),
        ],
    ),
    "glaciers": (
        "Glaciers and ice ages",
        [
            (
                "How glaciers move",
                "A glacier forms where more snow falls each winter than melts each summer. Compressed into ice, it flows slowly downhill under its own weight, sliding on meltwater at its base.",
            ),
            (
                "Landscapes",
                "Glaciers carve U-shaped valleys, sharp ridges and deep fjords, and leave behind moraines of rock debris and large erratic boulders far from where they were picked up.",
            ),
            (
                "Ice ages",
                "Over the last million years, ice ages have come and gone roughly every hundred thousand years, paced by small changes in the Earth's orbit known as Milankovitch cycles.",
            ),
        ],
    ),
    "git-branching": (
        "Git branching strategies",
        [
            (
                "Feature branches",
                "With feature branches, each change is developed on its own branch and merged into main through a reviewed pull request, keeping main always releasable.",
            ),
            (
                "Trunk-based development",
                "Trunk-based development keeps branches short-lived, merging small changes into main at least daily, and hides unfinished work behind feature flags instead of long-running branches.",
            ),
            (
                "Rebasing",
                "Rebasing replays a branch's commits on top of the latest main, producing a linear history; it rewrites commit ids, so never rebase commits that others have already pulled.",
            ),
        ],
    ),
    "octopus": (
        "The intelligence of octopuses",
        [
            (
                "Nervous system",
                "An octopus has about five hundred million neurons, two thirds of them in its arms, which can taste, touch and make simple decisions on their own.",
            ),
            (
                "Camouflage",
                "Specialized skin cells called chromatophores let an octopus change colour and pattern in a fraction of a second, and muscles in its skin can even change its texture to mimic rock or seaweed.",
            ),
            (
                "Problem solving",
                "In laboratories octopuses have opened screw-top jars, escaped from tanks and recognised individual keepers, remarkable abilities for an animal that lives only one or two years.",
            ),
        ],
    ),
}

PDF_TOPICS = ("black-holes", "roman-aqueducts", "glaciers")
HTML_TOPICS = ("honeybees", "coffee-brewing", "octopus", "tides")
TXT_TOPICS = ("composting", "photosynthesis", "origami")
GZ_TOPICS = ("marathon-training", "git-branching")


def markdown(title: str, sections: list[tuple[str, str]]) -> str:
    body = "\n\n".join(f"## {h}\n\n{p}" for h, p in sections)
    return f"# {title}\n\n{body}\n"


def html(title: str, sections: list[tuple[str, str]]) -> str:
    body = "".join(f"<h2>{h}</h2>\n<p>{p}</p>\n" for h, p in sections)
    return (
        f"<!doctype html><html><head><title>{title}</title><style>p{{margin:0}}</style>"
        f"<script>console.log('not content')</script></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/about'>About</a></nav>"
        f"<article><h1>{title}</h1>\n{body}</article><footer>Copyright sample</footer></body></html>"
    )


def pdf(path: Path, title: str, sections: list[tuple[str, str]]) -> None:
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.platypus import Flowable, PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    story: list[Flowable] = [Paragraph(title, styles["Title"])]
    for i, (heading, text) in enumerate(sections):
        if i:
            story.append(PageBreak())
        story += [Paragraph(heading, styles["Heading2"]), Paragraph(text, styles["BodyText"])]
    SimpleDocTemplate(str(path), pagesize=A4, title=title).build(story)


def main(out: Path) -> None:
    for name, (title, sections) in TOPICS.items():
        if name in PDF_TOPICS:
            target = out / "reports" / f"{name}.pdf"
            target.parent.mkdir(parents=True, exist_ok=True)
            pdf(target, title, sections)
            continue
        if name in HTML_TOPICS:
            target, content = out / "web" / f"{name}.html", html(title, sections)
        elif name in TXT_TOPICS:
            plain = f"{title}\n\n" + "\n\n".join(p for _, p in sections) + "\n"
            target, content = out / "notes" / f"{name}.txt", plain
        else:
            target, content = out / "guides" / f"{name}.md", markdown(title, sections)
        target.parent.mkdir(parents=True, exist_ok=True)
        if name in GZ_TOPICS:
            target = target.with_name(target.name + ".gz")
            target.write_bytes(gzip.compress(content.encode(), mtime=0))
        else:
            target.write_text(content, encoding="utf-8")
    # Real-world names: spaces, commas, unicode; and input the pipeline must refuse politely.
    odd = out / "guides" / "Notes, drafts & ideas — café.md"
    odd.write_text(markdown("Café notes", [("Espresso", TOPICS["coffee-brewing"][1][0][1])]))
    (out / "broken").mkdir(exist_ok=True)
    (out / "broken" / "empty.txt").write_bytes(b"")
    (out / "broken" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (out / "broken" / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    (out / "broken" / "truncated.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog")
    office(out / "office")


def office(out: Path) -> None:
    """One small file of each office/data format, each with facts only it holds."""
    from rag_ingest.testing import formats as f

    out.mkdir(parents=True, exist_ok=True)
    (out / "field-station-report.docx").write_bytes(
        f.docx_bytes(
            "Field station report",
            "Glacier survey",
            "The survey team measured the Taku glacier retreating forty metres over the summer.",
            [["Station", "Snowfall (cm)"], ["North ridge", "412"], ["Lake camp", "268"]],
        )
    )
    (out / "quarterly-review.pptx").write_bytes(
        f.pptx_bytes(
            [
                ("Quarterly review", "Highlights of the third quarter", "Welcome everyone."),
                (
                    "Tea exports",
                    "Darjeeling tea exports grew by a fifth",
                    "Mention the monsoon delayed the first flush harvest.",
                ),
            ]
        )
    )
    (out / "bird-counts.xlsx").write_bytes(
        f.xlsx_bytes(
            {
                "Counts": [["Species", "Count"], ["Atlantic puffin", 340], ["Arctic tern", 1210]],
                "Sites": [["Site", "Habitat"], ["Skomer island", "sea cliffs and burrows"]],
            }
        )
    )
    (out / "lighthouses.csv").write_text(
        "name,country,height_m\nHook Head,Ireland,35\nTour de Cordouan,France,68\n",
        encoding="utf-8",
    )
    (out / "telescope-config.json").write_bytes(
        f.json_bytes({"telescope": {"mirror": "segmented beryllium", "aperture_m": 6.5}})
    )
    (out / "orchard-update.eml").write_bytes(
        f.eml_bytes(
            "Orchard update",
            "Grower <grower@example.com>",
            "The cider apple harvest starts next week; Kingston Black trees look strong.",
            "<p>The cider apple harvest starts next week.</p>",
            {"pickers.csv": b"picker,rows\nMaya,12\nTom,9\n"},
        )
    )
    (out / "river-guide.epub").write_bytes(
        f.epub_bytes(
            "A short river guide",
            [("Source", "The Danube rises in the Black Forest at Donaueschingen.")],
        )
    )


if __name__ == "__main__":
    main(Path(__file__).resolve().parent.parent / "sample_corpus")
