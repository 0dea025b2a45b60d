"""Traffic: what packets a trial sends (plan) and, on real platforms, how they are sent and paced."""
