from transform.labels.stage import main

main()
