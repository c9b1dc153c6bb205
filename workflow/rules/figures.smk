# Paper figures and tables: pure functions of the analysis CSVs (gdyn.plots, gdyn.compare).
#
# One rule per figure/table (figure_fig2 ... figure_supp_fig3, table_supp_table1/2), made in
# a loop: the seven figure rules are the same rule but for the name (and fig4's extra
# outputs), and so are the two table rules. What each one draws is listed in one place,
# gdyn.plots.registry.figure_input_paths, which the `gdyn figure` command reads too; a new
# figure is an entry there and a builder in gdyn.plots.figures, not a new rule.
# `snakemake results/figures/fig4.pdf` builds one figure and only what it draws. The only
# setting a figure reads is its system's data_label (a param Snakemake compares: an edit
# reruns it); the rest reaches it through its input files.


report: "../report/workflow.rst"


# Functions (not strings) for params, so that Snakemake does not read braces in a data
# label such as "peo-traj-{a..e}" as wildcards; `_n=_name` binds the loop variable.
# Paths and labels reach the shell quoted ({...:q}).
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
            inputs=lambda wc, input: json.dumps(dict(input.items()), sort_keys=True),
            data_label=lambda wc, _n=_name: gdyn_plots.system_data_label(_n, SYSTEMS),
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
            "gdyn figure {params.name} {output.pdf:q} --png {output.png:q} "
            "--inputs {params.inputs:q} --data-label {params.data_label:q} "
            "--configurations {output.configurations:q} > {log:q} 2>&1"


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
            inputs=lambda wc, input: json.dumps(dict(input.items()), sort_keys=True),
            data_label=lambda wc, _n=_name: gdyn_plots.system_data_label(_n, SYSTEMS),
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
            "gdyn table {params.name} {output.csv:q} --md {output.md:q} "
            "--inputs {params.inputs:q} --data-label {params.data_label:q} > {log:q} 2>&1"


rule paper_comparison:
    """Every headline number of the paper beside this run's value and its data source.

    Depends on exactly what it reads: the files of gdyn.compare.comparison_inputs (Koopman
    summaries and tables of the models it quotes, charge/diffusion/conduction CSVs of the
    PEO role) and the config keys of gdyn.compare.comparison_settings (each system's data
    source, simulate block, figures and models), which are all `gdyn compare` is given. An
    edit to any other setting reruns it only through those files.
    """
    input:
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
        systems=lambda wc: json.dumps(gdyn_compare.comparison_settings(SYSTEMS), sort_keys=True),
        inputs=lambda wc: json.dumps(gdyn_compare.comparison_inputs(SYSTEMS), sort_keys=True),
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
        "gdyn compare {output.md:q} --csv {output.csv:q} --systems {params.systems:q} "
        "--inputs {params.inputs:q} > {log:q} 2>&1"
