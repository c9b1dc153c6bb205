# State-weighted structure and transport of the analysed model at tau*.


rule rdf:
    """State-weighted RDF g_i(r) and coordination number n_i(r) around the targets (Eq. 12)."""
    input:
        unpack(analysis_inputs),
    output:
        "results/structure/{system}/rdf.csv",
    params:
        args=analysis_args,
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("rdf", "{system}"),
    benchmark:
        bench_path("rdf", "{system}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn rdf {output} {params.args} --settings {params.settings} > {log} 2>&1"


rule charge:
    """Charge integral of each state within the first solvation shell (Supp. Note 3)."""
    input:
        rdf="results/structure/{system}/rdf.csv",
    output:
        "results/structure/{system}/charge.csv",
    params:
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("charge", "{system}"),
    benchmark:
        bench_path("charge", "{system}")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    conda:
        GDYN_ENV
    shell:
        "gdyn charge {input.rdf} {output} --settings {params.settings} > {log} 2>&1"


rule profile:
    """Distribution of each state along an axis (Fig. 3c)."""
    input:
        unpack(analysis_inputs),
    output:
        "results/structure/{system}/profile.csv",
    params:
        args=analysis_args,
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("profile", "{system}"),
    benchmark:
        bench_path("profile", "{system}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn profile {output} {params.args} --settings {params.settings} > {log} 2>&1"


rule snapshot:
    """Per-atom state probabilities of one frame as extended XYZ (OVITO) plus a PNG."""
    input:
        unpack(analysis_inputs),
    output:
        xyz="results/structure/{system}/snapshot.extxyz",
        png="results/structure/{system}/snapshot.png",
    params:
        args=analysis_args,
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("snapshot", "{system}"),
    benchmark:
        bench_path("snapshot", "{system}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn snapshot {output.xyz} --png {output.png} {params.args} "
        "--settings {params.settings} > {log} 2>&1"


rule positions:
    """Folded target positions with one model's state probabilities at its tau* (Figs. 2c, 3b)."""
    input:
        unpack(positions_inputs),
    output:
        "results/structure/{system}/positions-{model}-s{n_states}.csv",
    params:
        args=analysis_args,
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("positions", "{system}-{model}-s{n_states}"),
    benchmark:
        bench_path("positions", "{system}-{model}-s{n_states}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn positions {output} {params.args} --settings {params.settings} > {log} 2>&1"


rule q3:
    """Steinhardt q3 of the target atoms and its distribution per learned state (Supp. Fig. 2)."""
    input:
        unpack(analysis_inputs),
    output:
        "results/structure/{system}/q3.csv",
    params:
        args=analysis_args,
        settings=lambda wc: settings("structure", wc.system),
    log:
        log_path("q3", "{system}"),
    benchmark:
        bench_path("q3", "{system}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn q3 {output} {params.args} --settings {params.settings} > {log} 2>&1"


rule conduction:
    """Transition MSDs, D_ij(tau*) and cluster Nernst-Einstein shares sigma_ij (Eqs. 13-16)."""
    input:
        unpack(analysis_inputs),
        charge=lambda wc: (
            [f"results/structure/{wc.system}/charge.csv"]
            if "charge" in SYSTEMS[wc.system].get("structure", {})
            else []
        ),
    output:
        diffusion="results/structure/{system}/diffusion.csv",
        conduction="results/structure/{system}/conduction.csv",
    params:
        args=analysis_args,
        charge=lambda wc, input: f"--charge {input.charge[0]}" if input.charge else "",
        settings=lambda wc: settings("conduction", wc.system),
        ci=lambda wc: settings("koopman", wc.system),
    log:
        log_path("conduction", "{system}"),
    benchmark:
        bench_path("conduction", "{system}")
    threads: 1
    resources:
        **ANALYSIS_RESOURCES,
    conda:
        GDYN_ENV
    shell:
        "gdyn conduction {output.diffusion} {output.conduction} {params.args} {params.charge} "
        "--settings {params.settings} --koopman-settings {params.ci} > {log} 2>&1"
