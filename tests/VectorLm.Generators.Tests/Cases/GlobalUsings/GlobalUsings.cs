global using System;
global using System.Collections.Generic;
global using TorchSharp;
global using VectorLm;
global using VectorLm.Sampling;
global using static TorchSharp.torch;
