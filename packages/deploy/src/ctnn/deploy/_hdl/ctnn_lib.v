// ctnn-deploy HDL library: one parameterized module per op kind of the integer dialect.
// Every vector packs N elements, element i at bits [i*W +: W]; numbers are two's complement
// (signed) unless a module says otherwise (comparison results and Where conditions are 1 bit).
// Widths come from ctnn's interval analysis of the graph, so no operation overflows except
// where the graph itself wraps (a Cast to a narrower container, done by ctnn_cast).
// Division truncates toward zero, as in ONNX, C and Verilog's signed '/'.
`default_nettype none

// ---------------------------------------------------------------- elementwise, combinational
// OP: 0 add, 1 subtract, 2 maximum, 3 minimum (one module: the same elementwise structure)
module ctnn_binop #(parameter N = 1, WA = 8, WB = 8, WY = 9, OP = 0) (
  input wire [N*WA-1:0] a, input wire [N*WB-1:0] b, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    wire signed [WB-1:0] bi = b[i*WB +: WB];
    wire signed [WY-1:0] yi = (OP == 0) ? ai + bi : (OP == 1) ? ai - bi :
                              (OP == 2) ? ((ai > bi) ? ai : bi) : ((ai < bi) ? ai : bi);
    assign y[i*WY +: WY] = yi;
  end endgenerate
endmodule

module ctnn_mul #(parameter N = 1, WA = 8, WB = 8, WY = 16) (
  input wire [N*WA-1:0] a, input wire [N*WB-1:0] b, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    wire signed [WB-1:0] bi = b[i*WB +: WB];
    wire signed [WA+WB-1:0] full = ai * bi;  // at its own width: synthesis keeps a WA x WB multiplier
    wire signed [WY-1:0] yi = full;
    assign y[i*WY +: WY] = yi;
  end endgenerate
endmodule

// Multiplication by constants C[i] (WC bits each, two's complement) as shifts and adds: one
// adder per set bit (yosys and most synthesis tools keep a general multiplier otherwise).
module ctnn_mul_const #(parameter N = 1, WA = 8, WC = 8, WY = 16, parameter [N*WC-1:0] C = 0) (
  input wire [N*WA-1:0] a, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    localparam [WC-1:0] CI = C[i*WC +: WC];
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    reg signed [WY-1:0] acc;
    integer b;
    always @* begin
      acc = 0;
      for (b = 0; b < WC - 1; b = b + 1)
        if (CI[b]) acc = acc + ($signed({{WY{ai[WA-1]}}, ai}) <<< b);
      if (CI[WC-1]) acc = acc - ($signed({{WY{ai[WA-1]}}, ai}) <<< (WC - 1));
    end
    assign y[i*WY +: WY] = acc;
  end endgenerate
endmodule

// OP: 0 less, 1 greater, 2 equal; one bit per element
module ctnn_cmp #(parameter N = 1, WA = 8, WB = 8, OP = 0) (
  input wire [N*WA-1:0] a, input wire [N*WB-1:0] b, output wire [N-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    wire signed [WB-1:0] bi = b[i*WB +: WB];
    assign y[i] = (OP == 0) ? (ai < bi) : (OP == 1) ? (ai > bi) : (ai == bi);
  end endgenerate
endmodule

module ctnn_where #(parameter N = 1, WA = 8, WB = 8, WY = 8) (
  input wire [N-1:0] c, input wire [N*WA-1:0] a, input wire [N*WB-1:0] b, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    wire signed [WB-1:0] bi = b[i*WB +: WB];
    wire signed [WY-1:0] yi = c[i] ? ai : bi;
    assign y[i*WY +: WY] = yi;
  end endgenerate
endmodule

// Cast to an integer container of CB bits (signed if SO): keep the low CB bits (two's-complement
// wrap, as numpy's astype and C do), then sign- or zero-extend to WY. SI: the input is signed
// (0 for bool / 1-bit inputs, which zero-extend).
module ctnn_cast #(parameter N = 1, WI = 8, SI = 1, CB = 8, SO = 1, WY = 8) (
  input wire [N*WI-1:0] x, output wire [N*WY-1:0] y);
  localparam WW = (WI > CB ? WI : CB) + 1;
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire [WI-1:0] xi = x[i*WI +: WI];
    wire [WW-1:0] wide = SI ? {{(WW-WI){xi[WI-1]}}, xi} : {{(WW-WI){1'b0}}, xi};
    wire [CB-1:0] low = wide[CB-1:0];
    wire [WY+CB-1:0] ext = SO ? {{WY{low[CB-1]}}, low} : {{WY{1'b0}}, low};
    assign y[i*WY +: WY] = ext[WY-1:0];
  end endgenerate
endmodule

// Division by a constant power of two 2^SH[i] (per element, SH packed 8 bits each),
// truncating toward zero: (a + (a < 0 ? 2^s - 1 : 0)) >>> s.
module ctnn_div_pow2 #(parameter N = 1, WA = 8, WY = 8, parameter [N*8-1:0] SH = 0) (
  input wire [N*WA-1:0] a, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    localparam integer S = SH[i*8 +: 8];
    wire signed [WA:0] ai = $signed(a[i*WA +: WA]);
    wire signed [WA:0] bias = (ai < 0) ? $signed(({{WA{1'b0}}, 1'b1} << S) - 1) : 0;
    wire signed [WA:0] q = (ai + bias) >>> S;
    assign y[i*WY +: WY] = q[WY-1:0];
  end endgenerate
endmodule

// The requantization's rounding division: round_div(p, 2^S) = trunc((p +- 2^(S-1)) / 2^S), half
// away from zero, as the dialect writes it (Where(Less(p, 0), p - h, p + h) / 2^S). One adder:
// p + h - (p < 0), then an arithmetic shift.
module ctnn_round_shift #(parameter N = 1, WA = 32, WY = 8, S = 1) (
  input wire [N*WA-1:0] a, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA:0] ai = $signed(a[i*WA +: WA]);
    wire signed [WA:0] h = $signed({{WA{1'b0}}, 1'b1} << (S - 1));
    wire signed [WA:0] q = (ai + h - (ai < 0 ? 1 : 0)) >>> S;
    assign y[i*WY +: WY] = q[WY-1:0];
  end endgenerate
endmodule

// Division by a non-constant or non-power-of-two divisor, combinational (Verilog '/').
module ctnn_div_comb #(parameter N = 1, WA = 8, WB = 8, WY = 8) (
  input wire [N*WA-1:0] a, input wire [N*WB-1:0] b, output wire [N*WY-1:0] y);
  genvar i;
  generate for (i = 0; i < N; i = i + 1) begin : g
    wire signed [WA-1:0] ai = a[i*WA +: WA];
    wire signed [WB-1:0] bi = b[i*WB +: WB];
    wire signed [WA-1:0] qi = ai / bi;
    assign y[i*WY +: WY] = qi[WY-1:0];
  end endgenerate
endmodule

// Reductions over K elements per output (input packed output-major: element n*K + k).
// OP: 0 sum, 1 max, 2 min.
module ctnn_reduce #(parameter N = 1, K = 2, WA = 8, WY = 9, OP = 0) (
  input wire [N*K*WA-1:0] a, output wire [N*WY-1:0] y);
  genvar n;
  generate for (n = 0; n < N; n = n + 1) begin : g
    reg signed [WY-1:0] acc;
    reg signed [WA-1:0] ak;
    integer k;
    always @* begin
      acc = $signed(a[(n*K)*WA +: WA]);
      for (k = 1; k < K; k = k + 1) begin
        ak = a[(n*K+k)*WA +: WA];
        if (OP == 0) acc = acc + ak;
        else if (OP == 1) acc = (ak > acc) ? ak : acc;
        else acc = (ak < acc) ? ak : acc;
      end
    end
    assign y[n*WY +: WY] = acc;
  end endgenerate
endmodule

// ---------------------------------------------------------------- engines (sequential, start/done)
// Each engine starts on a one-cycle `start` pulse and raises `done` for one cycle when its
// output `y` is complete; `y` then holds until the next start. Inputs must stay stable
// while it runs (the top drives them from registers).

// A dense layer y[n] = sum_k x[k] * w[k][n] with a reuse factor R: N * KC multipliers
// (KC = ceil(K / R)), each used R times; cycle r multiplies x[r*KC .. r*KC+KC-1] with weight
// word r of a ROM (depth R, width N*KC*WW, initialized from ROMFILE with $readmemh: constant
// multipliers when R = 1, a block RAM when it is large). Latency: R + 2 cycles.
module ctnn_dense #(parameter K = 1, N = 1, R = 1, KC = 1, WX = 8, WW = 8, WACC = 32,
                    parameter ROMFILE = "w.hex") (
  input wire clk, input wire rst, input wire start, input wire [K*WX-1:0] x,
  output reg done, output wire [N*WACC-1:0] y);
  reg [N*KC*WW-1:0] rom [0:R-1];
  initial $readmemh(ROMFILE, rom);
  localparam RB = $clog2(R + 1);
  reg [N*KC*WW-1:0] word_r;
  wire [N*KC*WW-1:0] word;
  generate if (R == 1) begin : c
    assign word = rom[0];  // constant weights: synthesis folds them into the multipliers
  end else begin : m
    assign word = word_r;  // a synchronous ROM (block RAM when large)
  end endgenerate
  reg busy, valid;
  reg [RB-1:0] addr, r;
  wire [R*KC*WX-1:0] xpad = {{(R*KC-K)*WX+1{1'b0}}, x};
  wire [KC*WX-1:0] xrow [0:R];  // the R slices of x, selected by r (row R: never used)
  genvar t;
  generate for (t = 0; t <= R; t = t + 1) begin : s
    if (t < R) begin : v
      assign xrow[t] = xpad[t*KC*WX +: KC*WX];
    end else begin : z
      assign xrow[t] = 0;
    end
  end endgenerate
  wire [KC*WX-1:0] xs = xrow[r];
  always @(posedge clk) word_r <= rom[addr < R ? addr : 0];
  // operands as arrays of elements (cheap to index in simulation)
  wire signed [WX-1:0] xe [0:KC-1];
  wire signed [WW-1:0] we [0:N*KC-1];
  genvar n, q;
  generate
    for (q = 0; q < KC; q = q + 1) begin : xq
      assign xe[q] = xs[q*WX +: WX];
    end
    for (q = 0; q < N * KC; q = q + 1) begin : wq
      assign we[q] = word[q*WW +: WW];
    end
  endgenerate
  generate for (n = 0; n < N; n = n + 1) begin : g
    // the KC products of output n this cycle, each at its own width, then their sum at WACC
    wire signed [WX+WW-1:0] prod [0:KC-1];
    for (q = 0; q < KC; q = q + 1) begin : m
      assign prod[q] = xe[q] * we[n*KC+q];
    end
    reg signed [WACC-1:0] part;
    integer j;
    always @* begin
      part = 0;
      for (j = 0; j < KC; j = j + 1) part = part + prod[j];
    end
    reg signed [WACC-1:0] acc;
    always @(posedge clk)
      if (start) acc <= 0;
      else if (valid) acc <= acc + part;
    assign y[n*WACC +: WACC] = acc;
  end endgenerate
  always @(posedge clk) begin
    done <= 1'b0;
    if (rst) begin
      busy <= 1'b0; valid <= 1'b0; addr <= 0; r <= 0;
    end else if (start) begin
      busy <= 1'b1; valid <= 1'b0; addr <= 0; r <= 0;
    end else if (busy) begin
      // cycle t reads word t (addr) and accumulates word t-1 (r)
      valid <= (addr < R);
      if (valid) r <= r + 1;
      if (addr < R) addr <= addr + 1;
      if (valid && r == R - 1) begin
        busy <= 1'b0; valid <= 1'b0; done <= 1'b1;
      end
    end
  end
endmodule

// Table lookup (ONNX Gather on axis 0 of a constant table of D rows of C elements): E
// indices, one per cycle, through a synchronous ROM initialized from ROMFILE. A negative
// index counts from the end, as in ONNX. Latency: E + 2 cycles.
module ctnn_lut #(parameter E = 1, WI = 8, D = 256, C = 1, WO = 8, parameter ROMFILE = "lut.hex") (
  input wire clk, input wire rst, input wire start, input wire [E*WI-1:0] idx,
  output reg done, output reg [E*C*WO-1:0] y);
  reg [C*WO-1:0] rom [0:D-1];
  initial $readmemh(ROMFILE, rom);
  reg [C*WO-1:0] word;
  reg [15:0] e, e_out;
  reg busy, valid;
  wire signed [WI-1:0] ie = idx[e*WI +: WI];
  wire signed [WI+16:0] eff = (ie < 0) ? ie + D : ie;
  always @(posedge clk) word <= rom[eff[15:0]];
  always @(posedge clk) begin
    done <= 1'b0;
    if (rst) begin
      busy <= 1'b0; valid <= 1'b0; e <= 0; e_out <= 0;
    end else if (start) begin
      busy <= 1'b1; valid <= 1'b0; e <= 0; e_out <= 0;
    end else if (busy) begin
      valid <= (e < E);
      if (e < E) e <= e + 1;
      if (valid) begin
        y[e_out*C*WO +: C*WO] <= word;
        e_out <= e_out + 1;
        if (e_out == E - 1) begin busy <= 1'b0; valid <= 1'b0; done <= 1'b1; end
      end
    end
  end
endmodule

// Division a[i] / b[i] truncating toward zero, E elements one after another through one
// restoring divider (one quotient bit per cycle). Latency: E * (WA + 2) + 1 cycles.
module ctnn_divider #(parameter E = 1, WA = 16, WB = 16, WQ = 16) (
  input wire clk, input wire rst, input wire start, input wire [E*WA-1:0] a, input wire [E*WB-1:0] b,
  output reg done, output reg [E*WQ-1:0] y);
  localparam LOAD = 2'd0, DIV = 2'd1, STORE = 2'd2;
  reg [1:0] st;
  reg busy, neg;
  reg [15:0] e, cnt;
  reg [WA-1:0] num, quo;
  reg [WB-1:0] den;
  reg [WB:0] rem;
  wire signed [WA-1:0] ae = a[e*WA +: WA];
  wire signed [WB-1:0] be = b[e*WB +: WB];
  wire [WB:0] shifted = {rem[WB-1:0], num[WA-1]};
  wire [WA-1:0] q = neg ? -quo : quo;
  always @(posedge clk) begin
    done <= 1'b0;
    if (rst) begin
      busy <= 1'b0;
    end else if (start) begin
      busy <= 1'b1; e <= 0; st <= LOAD;
    end else if (busy) begin
      case (st)
        LOAD: begin
          num <= (ae < 0) ? -ae : ae;
          den <= (be < 0) ? -be : be;
          neg <= (ae < 0) != (be < 0);
          rem <= 0; quo <= 0; cnt <= WA; st <= DIV;
        end
        DIV: begin
          num <= num << 1;
          if (shifted >= {1'b0, den}) begin rem <= shifted - {1'b0, den}; quo <= {quo, 1'b1}; end
          else begin rem <= shifted; quo <= {quo, 1'b0}; end
          if (cnt == 1) st <= STORE;
          cnt <= cnt - 1;
        end
        default: begin
          y[e*WQ +: WQ] <= q[WQ-1:0];
          if (e == E - 1) begin busy <= 1'b0; done <= 1'b1; end
          else begin e <= e + 1; st <= LOAD; end
        end
      endcase
    end
  end
endmodule
`default_nettype wire
