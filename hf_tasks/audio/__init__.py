"""Audio input for the audio tasks: reading and converting clips, augmenting training clips."""
