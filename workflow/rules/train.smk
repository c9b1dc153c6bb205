# One model per (system, model kind, n_states, lag): one rule per kind of the model registry
# (gdyn.models.REGISTRY: train_gdynet, train_vampnet), so a new kind needs no rule here; a
# kind whose inputs are "graphs" also reads the graph stores (or builds its graphs on the fly
# with graph.store: false). Each job trains every seed of train.seeds and keeps the best; its
# states are ordered by population at the first lag of the grid (the reference) and mapped
# onto the reference's states at every other lag (--reference: the reference model's
# probs_val.npz; gdyn.train.align).


def _no_graphs(wildcards):
    return []


for _kind in gdyn_models.MODEL_KINDS:
    _graphs = gdyn_models.spec(_kind).inputs == "graphs"

    rule:
        name:
            f"train_{_kind}"
        input:
            splits=lambda wc: split_files(wc.system),
            graphs=train_graph_inputs if _graphs else _no_graphs,
            reference=lambda wc, _k=_kind: reference_probs(wc, _k),
            sources=lambda wc: sources(wc.system),  # see traj_sources (common.smk)
        output:
            **model_outputs(_kind),
        params:
            splits=split_args,
            graphs=graph_args if _graphs else "",
            reference=lambda wc, _k=_kind: reference_arg(wc, _k),
            settings=lambda wc: settings("train", wc.system),
            outdir=lambda wc, _k=_kind: L.model_dir(wc.system, _k, wc.n_states, wc.lag),
            kind=_kind,
        log:
            log_path(f"train_{_kind}", "{system}/s{n_states}-lag{lag}"),
        benchmark:
            bench_path(f"train_{_kind}", "{system}/s{n_states}-lag{lag}")
        threads: int(EXECUTION.get("train_threads", 1))
        resources:
            mem_mb=train_mem_mb(_kind),
            **TRAIN_RESOURCES,
        conda:
            GDYN_ENV
        shell:
            "gdyn train {params.kind} {params.outdir} --n-states {wildcards.n_states} "
            "--lag {wildcards.lag} {params.splits} {params.graphs} {params.reference} "
            "--settings {params.settings} --threads {threads} > {log} 2>&1"
