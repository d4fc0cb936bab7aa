-- One registered model.
SELECT * FROM models WHERE model_id = $model_id
