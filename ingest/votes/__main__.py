from ingest.votes.land import main

main()
