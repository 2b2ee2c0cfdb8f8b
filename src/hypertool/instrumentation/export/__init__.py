"""③ Export: finished spans are delivered to each sink (Langfuse, an OTLP collector, the local
store, the console) through a bounded queue per sink; every span a sink cannot take is counted.
"""
