"""Text preprocessing shared by tasks and metrics: Persian normalisation and tweet normalisation."""
