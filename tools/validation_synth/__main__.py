from tools.validation_synth.cli import main

raise SystemExit(main())
