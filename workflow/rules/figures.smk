# Paper figures and tables: pure functions of the analysis CSVs.


def _koopman_files(system, model, n_states, tables=("timescales", "ck", "eigen", "populations")):
    d = koopman_dir(system, model, n_states)
    return {t: f"{d}/{t}.csv" for t in tables}


def figure_inputs(wildcards):
    """Named inputs of one figure or table, by name (see the paper's figure list)."""
    name = wildcards.name
    system = figure_system(name)
    if system is None:
        raise ValueError(f"no system in the config lists {name} under 'figures'")
    model, n = analysed(system)
    d = f"results/structure/{system}"
    if name == "fig2":
        states = gc.model_state_counts(SYSTEMS[system])
        n_vamp = n if n in states.get("vampnet", []) else states["vampnet"][0]
        ins = {"energy": f"results/toy/{system}/energy_path.csv"}
        ins.update({f"gdynet_{k}": v for k, v in _koopman_files(system, "gdynet", n).items()})
        ins.update({f"vampnet_{k}": v for k, v in _koopman_files(system, "vampnet", n_vamp).items()})
        ins["gdynet_snapshot"] = f"{d}/snapshot.extxyz"
        return ins
    if name == "supp_fig1":
        n_max = max(gc.model_state_counts(SYSTEMS[system])["vampnet"])
        return _koopman_files(system, "vampnet", n_max, ("timescales",))
    if name == "fig3":
        ins = _koopman_files(system, model, n)
        ins.update({"snapshot": f"{d}/snapshot.extxyz", "profile": f"{d}/profile.csv"})
        return ins
    if name == "fig4":
        ins = _koopman_files(system, model, n)
        ins["charge"] = f"{d}/charge.csv"
        return ins
    if name == "fig5":
        return {"conduction": f"{d}/conduction.csv"}
    if name == "supp_fig2":
        return {"q3": f"{d}/q3.csv"}
    if name == "supp_fig3":
        return {"rdf": f"{d}/rdf.csv"}
    if name == "supp_table1":
        return {"charge": f"{d}/charge.csv"}
    if name == "supp_table2":
        return {"diffusion": f"{d}/diffusion.csv"}
    raise ValueError(f"unknown figure or table {name!r}")


def inputs_json(wildcards, input):
    return shlex.quote(json.dumps({k: str(v) for k, v in input.items()}, sort_keys=True))


rule figure:
    """One paper figure as PDF and PNG."""
    input:
        unpack(figure_inputs),
    output:
        pdf="results/figures/{name}.pdf",
        png="results/figures/{name}.png",
    wildcard_constraints:
        name="|".join(FIGURES),
    params:
        inputs=inputs_json,
        label=lambda wc: shlex.quote(SYSTEMS[figure_system(wc.name)].get("data_label", "")),
    log:
        log_path("figure", "{name}"),
    benchmark:
        bench_path("figure", "{name}")
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn figure {wildcards.name} {output.pdf} --png {output.png} --inputs {params.inputs} "
        "--data-label {params.label} > {log} 2>&1"


rule table:
    """One supplementary table as CSV and Markdown."""
    input:
        unpack(figure_inputs),
    output:
        csv="results/tables/{name}.csv",
        md="results/tables/{name}.md",
    wildcard_constraints:
        name="|".join(TABLES),
    params:
        inputs=inputs_json,
        label=lambda wc: shlex.quote(SYSTEMS[figure_system(wc.name)].get("data_label", "")),
    log:
        log_path("table", "{name}"),
    benchmark:
        bench_path("table", "{name}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn table {wildcards.name} {output.csv} --md {output.md} --inputs {params.inputs} "
        "--data-label {params.label} > {log} 2>&1"


def comparison_inputs(wildcards):
    ins = []
    for system in SYSTEMS:
        ins += koopman_outputs(system) + structure_outputs(system)
        ins += [
            f"{koopman_dir(system, m, n)}/summary.json"
            for m, counts in gc.model_state_counts(SYSTEMS[system]).items()
            for n in counts
        ]
    return ins


rule paper_comparison:
    """Every headline number of the paper beside this run's value and its data source."""
    input:
        comparison_inputs,
    output:
        md="results/tables/paper_comparison.md",
        csv="results/tables/paper_comparison.csv",
    params:
        systems=lambda wc: shlex.quote(json.dumps(SYSTEMS, sort_keys=True)),
    log:
        log_path("paper_comparison", "all"),
    benchmark:
        bench_path("paper_comparison", "all")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn compare {output.md} --csv {output.csv} --systems {params.systems} > {log} 2>&1"
