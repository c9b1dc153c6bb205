# Paper figures and tables: pure functions of the analysis CSVs (gdyn.plots, gdyn.compare).
# One rule per figure/table, generated below, so that each carries its own report caption
# (workflow/report/<name>.rst); `snakemake results/figures/fig4.pdf` still builds one figure
# and only what it needs (gdyn.plots.figure_input_paths lists exactly what it draws).
from gdyn import compare as gdyn_compare
from gdyn import plots as gdyn_plots


report: "../report/workflow.rst"


# Functions (not strings) for params, so that Snakemake does not read braces in a data
# label such as "peo-traj-{a..e}" as wildcards; `_n=_name` binds the loop variable.
for _name in L.FIGURES:

    rule:
        name:
            f"figure_{_name}"
        input:
            unpack(lambda wc, _n=_name: gdyn_plots.figure_input_paths(_n, SYSTEMS)),
        output:
            pdf=L.figure(_name, "pdf"),
            png=report(
                L.figure(_name, "png"),
                caption=f"../report/{_name}.rst",
                category="Figures",
                labels={
                    "item": gdyn_plots.SHORT_TITLES[_name],
                    "system": figure_system(_name) or "not in this config",
                },
            ),
            # Fig. 4b: each state's representative configuration, next to the figure.
            configurations=gdyn_plots.figure_configuration_paths(_name, SYSTEMS),
        params:
            name=_name,
            inputs=lambda wc, input: shlex.quote(json.dumps(dict(input.items()), sort_keys=True)),
            data_label=lambda wc, _n=_name: gdyn_plots.system_data_label(_n, SYSTEMS),
            label=lambda wc, _n=_name: shlex.quote(gdyn_plots.system_data_label(_n, SYSTEMS)),
            configurations=lambda wc, output: (
                "--configurations " + " ".join(output.configurations)
                if output.configurations
                else ""
            ),
        log:
            log_path("figure", _name),
        benchmark:
            bench_path("figure", _name)
        threads: 1
        resources:
            mem_mb=2000,
            runtime=10,
        conda:
            GDYN_ENV
        shell:
            "gdyn figure {params.name} {output.pdf} --png {output.png} --inputs {params.inputs} "
            "--data-label {params.label} {params.configurations} > {log} 2>&1"


for _name in L.TABLES:

    rule:
        name:
            f"table_{_name}"
        input:
            unpack(lambda wc, _n=_name: gdyn_plots.figure_input_paths(_n, SYSTEMS)),
        output:
            csv=report(
                L.table(_name, "csv"),
                caption=f"../report/{_name}.rst",
                category="Tables",
                labels={
                    "item": gdyn_plots.SHORT_TITLES[_name],
                    "system": figure_system(_name) or "not in this config",
                },
            ),
            md=L.table(_name, "md"),
        params:
            name=_name,
            inputs=lambda wc, input: shlex.quote(json.dumps(dict(input.items()), sort_keys=True)),
            data_label=lambda wc, _n=_name: gdyn_plots.system_data_label(_n, SYSTEMS),
            label=lambda wc, _n=_name: shlex.quote(gdyn_plots.system_data_label(_n, SYSTEMS)),
        log:
            log_path("table", _name),
        benchmark:
            bench_path("table", _name)
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        conda:
            GDYN_ENV
        shell:
            "gdyn table {params.name} {output.csv} --md {output.md} --inputs {params.inputs} "
            "--data-label {params.label} > {log} 2>&1"


rule paper_comparison:
    """Every headline number of the paper beside this run's value and its data source."""
    input:
        # Exactly the files `gdyn compare` reads.
        lambda wc: sorted(gdyn_compare.comparison_inputs(SYSTEMS).values()),
    output:
        md=L.table("paper_comparison", "md"),
        csv=report(
            L.table("paper_comparison", "csv"),
            caption="../report/paper_comparison.rst",
            category="Paper comparison",
            labels={"item": "paper comparison", "system": ", ".join(SYSTEMS)},
        ),
    params:
        systems=lambda wc: shlex.quote(json.dumps(SYSTEMS, sort_keys=True)),
        inputs=lambda wc: shlex.quote(
            json.dumps(gdyn_compare.comparison_inputs(SYSTEMS), sort_keys=True)
        ),
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
        "gdyn compare {output.md} --csv {output.csv} --systems {params.systems} "
        "--inputs {params.inputs} > {log} 2>&1"
