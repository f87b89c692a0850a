# %% [markdown]
# # lomas walkthrough: differentially private queries on a dataset you cannot see
#
# A lomas server holds a sensitive dataset (here the demo *penguins* table: species, island,
# bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, sex). You never see its rows:
# you read its public metadata, develop queries on dummy data for free, and spend a privacy budget
# (epsilon, delta) on differentially private answers.
#
# The client reads its configuration from the environment:
#
# ```bash
# export LOMAS_URL=http://localhost:8000 LOMAS_TOKEN=... LOMAS_DATASET=penguins
# ```

# %%
import opendp.prelude as dp
import polars as pl

from lomas_client import BudgetExceededError, Client, InvalidQueryError

dp.enable_features("contrib")
client = Client()  # url, token and dataset from LOMAS_URL, LOMAS_TOKEN, LOMAS_DATASET
print(client)

# %% [markdown]
# ## 1. What is there?
# The datasets you were granted, and the public metadata of ours: column types, bounds and
# categories, and `max_ids` (how many rows one penguin may contribute).

# %%
print(client.list_datasets())
metadata = client.get_dataset_metadata()
for name, column in metadata["columns"].items():
    print(f"{name:>18}: {column}")

# %% [markdown]
# ## 2. Dummy data
# A synthetic table with the same schema, generated from the metadata only. Use it to write and
# debug queries; it costs nothing.

# %%
dummy = client.get_dummy_dataset(nb_rows=200, seed=7)
print(dummy.head())
print(dummy.dtypes)

# %% [markdown]
# ## 3. Your budget

# %%
print("initial  ", client.get_initial_budget())
print("spent    ", client.get_total_spent_budget())
print("remaining", client.get_remaining_budget())

# %% [markdown]
# ## 4. SQL with SmartNoise-SQL
# The table is called `df`. First estimate the cost (free), then try on dummy data (free), then
# run for real.

# %%
SQL = "SELECT species, COUNT(*) AS n, AVG(bill_length_mm) AS avg_bill FROM df GROUP BY species"
print("cost:", client.smartnoise_sql.cost(SQL, epsilon=0.5, delta=1e-5))

on_dummy = client.smartnoise_sql.query(SQL, epsilon=0.5, delta=1e-5, dummy=True, nb_rows=500)
print("on dummy data (charged", on_dummy.epsilon, "):")
print(on_dummy.result)

# %%
res = client.smartnoise_sql.query(SQL, epsilon=0.5, delta=1e-5)
print(res.result)
print("this query cost", (res.epsilon, res.delta), "- remaining:", res.remaining)

# %% [markdown]
# A query the engine cannot run is refused before touching the data, and nothing is charged.

# %%
try:
    client.smartnoise_sql.query("SELECT wingspan FROM df", epsilon=0.1, delta=1e-5)
except InvalidQueryError as err:
    print("refused:", err.code, "-", err.message)

# %% [markdown]
# ## 5. OpenDP
# ### A polars plan
# `client.opendp.lazyframe()` is an empty LazyFrame with the dataset's schema: build a plan on it
# with OpenDP's polars expressions and say how much epsilon the whole plan may spend; the server
# calibrates the noise to it.

# %%
mass = metadata["columns"]["body_mass_g"]
mass_bounds = (float(mass["lower"]), float(mass["upper"]))
plan = client.opendp.lazyframe().select(
    dp.len().alias("n"),
    # `.dp` is the expression namespace OpenDP adds to polars at runtime (hence the type comment).
    pl.col("body_mass_g").fill_null(mass_bounds[0])
    .dp.sum(mass_bounds).alias("total_mass"),  # type: ignore[attr-defined]
)
print("cost:", client.opendp.cost(plan, epsilon=1.0))
print("on dummy data:", client.opendp.query(plan, epsilon=1.0, dummy=True).result, sep="\n")
res = client.opendp.query(plan, epsilon=1.0)
print(res.result)
print("remaining:", res.remaining)

# %% [markdown]
# ### A measurement pipeline
# A classic OpenDP pipeline reading one column (`column=`) as a vector of floats: clamp, sum, add
# Laplace noise. Its cost is its privacy map at the dataset's `max_ids`.

# %%
floats = dp.vector_domain(dp.atom_domain(T=float, nan=False))
pipeline = (
    dp.t.make_clamp(floats, dp.symmetric_distance(), mass_bounds)
    >> dp.t.then_sum()
    >> dp.m.then_laplace(scale=20_000.0)
)
print("cost:", client.opendp.cost(pipeline, column="body_mass_g"))
res = client.opendp.query(pipeline, column="body_mass_g")
print("noisy total body mass:", round(res.result), "- remaining:", res.remaining)

# %% [markdown]
# ## 6. Machine learning with DiffPrivLib
# A scikit-learn-like pipeline of DiffPrivLib steps, sent as data: step names and their
# parameters. The server supplies the bounds, norms and classes from the metadata (passing them
# is refused), trains on the private table and sends back the fitted parameters, which the client
# rebuilds into a scikit-learn model you can use locally. The cost is the sum of the steps'
# epsilons; `score_epsilon` buys a noisy test accuracy (without it no score is released).
# Needs `pip install 'lomas-client[diffprivlib]'`.

# %%
step = client.diffprivlib.step
ml_pipeline = [step("StandardScaler", epsilon=0.5), step("LogisticRegression", epsilon=1.0)]
ml_columns = {"feature_columns": ["bill_depth_mm", "flipper_length_mm"],
              "target_columns": ["species"], "score_epsilon": 0.5}
print("cost:", client.diffprivlib.cost(ml_pipeline, **ml_columns))
on_dummy_model = client.diffprivlib.query(ml_pipeline, dummy=True, nb_rows=300, **ml_columns)
print("trained on dummy data (charged", on_dummy_model.epsilon, "):", on_dummy_model.result)

# %%
res = client.diffprivlib.query(ml_pipeline, **ml_columns)
model = res.result
print(model, "- classes:", model.classes, "- noisy test accuracy:", model.score)
print("predictions on dummy rows:", list(model.predict(dummy)[:5]))
print("this training cost", (res.epsilon, res.delta), "- remaining:", res.remaining)

# %% [markdown]
# ## 7. Spending more than you have is refused (and costs nothing)

# %%
remaining = client.get_remaining_budget()
try:
    client.smartnoise_sql.query("SELECT COUNT(*) AS n FROM df",
                                epsilon=remaining["epsilon"] + 1.0, delta=1e-5)
except BudgetExceededError as err:
    print("refused:", err.message)
print("remaining is unchanged:", client.get_remaining_budget() == remaining)

# %% [markdown]
# ## 8. Your past queries
# Every real query is archived with its cost and its (already private) result.

# %%
for record in client.get_previous_queries():
    print(record["engine"], record["status"], (record["epsilon"], record["delta"]))
    print(record["result"])
print("total spent:", client.get_total_spent_budget())
client.close()
