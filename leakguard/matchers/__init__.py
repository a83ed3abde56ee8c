"""Face matchers behind one interface (leakguard.matchers.base.Matcher): images in, L2-normalised
identity embeddings out. Build one by name with leakguard.matchers.registry.build_matcher."""
