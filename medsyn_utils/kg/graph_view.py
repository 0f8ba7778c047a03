"""Pictures and an interactive explorer for the knowledge graph (used by notebook 01).

Figures are static matplotlib, so they survive headless papermill runs; the ipywidgets explorer
is only built when a front end can show it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import networkx as nx
import pandas as pd

from medsyn_utils.kg.graph import KnowledgeGraph

NODE_COLOURS = {"chapter": "#6a3d9a", "block": "#cab2d6", "category": "#1f78b4",
                "code": "#a6cee3", "symptom": "#33a02c"}
SOURCE_COLOURS = {"medsyn_tfidf": "#e31a1c", "medsyn_list": "#fb9a99", "wikimed": "#ff7f00",
                  "hsdn": "#b15928", "rumedprime_train": "#33a02c", "contains": "#999999"}


def degree_table(kg: KnowledgeGraph) -> pd.DataFrame:
    """Degree of every disease node (number of distinct symptoms) and every symptom (codes)."""
    graph = kg.graph
    rows = []
    for node in graph:
        if node[0] in ("category", "code"):
            symptoms = {t for _, t, d in graph.out_edges(node, data=True) if d.get("type") == "has_symptom"}
            rows.append((node[0], node[1], len(symptoms)))
        elif node[0] == "symptom":
            rows.append(("symptom", node[1], len({s for s, _ in graph.in_edges(node)})))
    return pd.DataFrame(rows, columns=["type", "id", "degree"])


def plot_degrees(kg: KnowledgeGraph, ax=None):
    """Histogram (log scale) of symptoms per disease node and diseases per symptom."""
    table = degree_table(kg)
    table = table[table["degree"] > 0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5)) if ax is None else (ax[0].figure, ax)
    for axis, kinds, title in ((axes[0], ("category", "code"), "symptoms per code"),
                               (axes[1], ("symptom",), "codes per symptom")):
        values = table[table["type"].isin(kinds)]["degree"]
        axis.hist(values, bins=40, log=True, color="#1f78b4")
        axis.set_title(f"{title} (n={len(values)})")
        axis.set_xlabel("degree")
    fig.tight_layout()
    return fig


def draw_ego(kg: KnowledgeGraph, code: str, radius: int = 1, max_symptoms: int = 15, ax=None):
    """Draw the neighbourhood of a code: hierarchy in grey, symptom edges coloured by source."""
    ego = kg.ego(code, radius=radius, max_symptoms=max_symptoms)
    if ego.number_of_nodes() > 120:  # keep the picture readable
        keep = {kg.node(code)} | set(list(nx.all_neighbors(ego, kg.node(code)))[:119])
        ego = ego.subgraph(keep).copy()
    simple = nx.Graph()
    for u, v, key in ego.edges(keys=True):
        simple.add_edge(u, v, source=key)
    simple.add_nodes_from(ego.nodes)
    if ax is None:
        fig, ax = plt.subplots(figsize=(11, 8))
    pos = nx.spring_layout(simple, seed=0, k=0.9)
    colours = [NODE_COLOURS.get(n[0], "#cccccc") for n in simple]
    sizes = [600 if n == kg.node(code) else 250 for n in simple]
    nx.draw_networkx_nodes(simple, pos, node_color=colours, node_size=sizes, ax=ax)
    edge_colours = [SOURCE_COLOURS.get(d["source"], "#999999") for _, _, d in simple.edges(data=True)]
    nx.draw_networkx_edges(simple, pos, edge_color=edge_colours, alpha=0.7, ax=ax)
    labels = {n: (n[1] if len(n[1]) < 28 else n[1][:26] + "…") for n in simple}
    nx.draw_networkx_labels(simple, pos, labels=labels, font_size=7, ax=ax)
    handles = [plt.Line2D([], [], color=c, lw=2, label=s) for s, c in SOURCE_COLOURS.items()]
    handles += [plt.Line2D([], [], marker="o", ls="", color=c, label=t) for t, c in NODE_COLOURS.items()]
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    ax.set_title(f"{kg.resolve(code)} {kg.name(code)[:60]} (radius {radius})")
    ax.axis("off")
    return ax.figure


def explorer(kg: KnowledgeGraph, codes: list[str] | None = None, top_k: int = 15):
    """An ipywidgets explorer: pick a code, see its symptoms, the codes sharing them, its ego graph.

    Returns the widget (or ``None`` when ipywidgets is not importable); displaying it in a
    headless run is harmless.
    """
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        return None
    options = codes or kg.rumedtop3_categories
    picker = widgets.Dropdown(options=[(f"{c} {kg.name(c)[:50]}", c) for c in options],
                              description="code")
    rollup = widgets.Checkbox(value=True, description="roll up sub-codes")
    output = widgets.Output()

    def show(*_):
        output.clear_output()
        with output:
            display(kg.symptoms(picker.value, rollup=rollup.value).head(top_k))
            display(kg.shared_symptoms(picker.value, top=10))
            draw_ego(kg, picker.value, max_symptoms=top_k)
            plt.show()

    picker.observe(show, names="value")
    rollup.observe(show, names="value")
    show()
    return widgets.VBox([widgets.HBox([picker, rollup]), output])
