using Samples.TopLevel;

System.Console.WriteLine("top-level statements are an entry point");
return TopLevelTrainer.Run(args);
