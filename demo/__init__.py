"""The built-in demo's generators: digits in three public layouts with planted defects, a simulated
crowd, and a static website for the crawl. A project like any user's (``sluice init --demo``); the
product packages never import it."""
