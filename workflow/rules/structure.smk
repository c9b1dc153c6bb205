# State-weighted structure and transport of the analysed model at tau*: one rule per entry
# of the gdyn.analysis registry (src/gdyn/analysis/), so a new analysis module needs no rule
# here. Inputs, outputs and arguments come from the entry (common.smk builds them).

for _spec in gdyn_analysis.REGISTRY.values():

    rule:
        name:
            _spec.name
        input:
            unpack(lambda wc, _s=_spec: analysis_inputs(_s, wc)),
        output:
            analysis_outputs(_spec),
        params:
            command=lambda wc, input, output, _s=_spec: analysis_command(_s, wc, input, output),
        log:
            log_path(_spec.name, analysis_log_stem(_spec)),
        benchmark:
            bench_path(_spec.name, analysis_log_stem(_spec))
        threads: 1
        resources:
            mem_mb=4000 if _spec.standard_inputs else 1000,
            runtime=60,
        conda:
            GDYN_ENV
        shell:
            "gdyn {params.command} > {log} 2>&1"
