"""Data: flow sets (precomputed PNG releases and glfnet caches), raw dataset readers,
protocol sample sets and the synthetic generator."""
